// Handoff compliance console: the little behaviour the pages need, with no inline
// script anywhere (the Content-Security-Policy forbids it).
"use strict";

document.addEventListener("click", function (event) {
  var button = event.target.closest ? event.target.closest("[data-print]") : null;
  if (button) {
    window.print();
  }
});

var PALETTE = ["#1f5f99", "#c2571a", "#2e8b57", "#8a3ea6", "#b8860b", "#a0303a", "#44706f"];

function drawChart(element, times, series) {
  var names = Object.keys(series);
  if (!names.length || times.length < 2) {
    element.textContent = "Not enough samples yet: the chart fills in as the broker runs.";
    return;
  }
  var data = [times];
  var config = [{}];
  names.forEach(function (name, i) {
    data.push(series[name]);
    config.push({label: name, stroke: PALETTE[i % PALETTE.length], width: 2, spanGaps: true});
  });
  var width = Math.max(280, Math.min(element.clientWidth || 560, 900));
  new uPlot({width: width, height: 220, series: config, axes: [{}, {size: 60}]}, data, element);
}

function drawFlow() {
  var charts = document.getElementById("charts");
  if (!charts || typeof uPlot === "undefined") {
    return;
  }
  fetch(charts.getAttribute("data-source"), {credentials: "same-origin"})
    .then(function (response) { return response.json(); })
    .then(function (flow) {
      charts.querySelectorAll(".chart").forEach(function (element) {
        var key = element.getAttribute("data-series");
        var series = key === "lag" ? {"lag": flow.lag} : flow[key];
        drawChart(element, flow.times, series || {});
      });
      charts.setAttribute("data-drawn", "true");
    });
}

window.addEventListener("load", drawFlow);
