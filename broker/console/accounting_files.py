"""The accounting of disclosures as files: CSV for spreadsheets, PDF to hand a person.

Both hold the columns 45 CFR 164.528(b)(2) and 34 CFR 99.32(a) ask for (date, recipient,
data disclosed, purpose, legal basis), and name the person only by subject pseudonym.
The PDF embeds DejaVu Sans, shipped in `fonts/`, so it prints the same everywhere.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence

from fpdf import FPDF

from broker.audit import Disclosure
from broker.console.render import HERE, utc_text

COLUMNS = ("Date", "Recipient", "Data disclosed", "Purpose", "Legal basis")
CSV_COLUMNS = (*COLUMNS, "Agreement", "Event type", "Consents relied on", "Decision id")
FONTS = HERE / "fonts"
WIDTHS = (38.0, 30.0, 115.0, 32.0, 62.0)
"""Column widths in mm: the 277 mm between the margins of a landscape A4 page."""
LINE_MM = 4.2
PAD_MM = 1.2


def row(d: Disclosure) -> tuple[str, str, str, str, str]:
    return (d.date, d.recipient or "", "; ".join(d.data_disclosed), d.purpose or "",
            "; ".join(d.legal_basis))


def accounting_csv(disclosures: Sequence[Disclosure]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for d in disclosures:
        writer.writerow((*row(d), d.agreement or "", d.event_type or "",
                         "; ".join(d.consent_ids), d.decision_id or ""))
    return out.getvalue().encode("utf-8")


def accounting_pdf(disclosures: Sequence[Disclosure], subject: str, period: str,
                   generated_ms: int, generated_by: str) -> bytes:
    pdf = FPDF(orientation="L", unit="mm", format="A4")
    pdf.set_title("Accounting of disclosures")
    pdf.set_creator("Handoff")
    pdf.add_font("DejaVu", "", str(FONTS / "DejaVuSans.ttf"))
    pdf.set_auto_page_break(auto=True, margin=12)
    pdf.add_page()
    pdf.set_font("DejaVu", "", 15)
    pdf.cell(0, 9, "Accounting of disclosures", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("DejaVu", "", 9.5)
    for line in (f"Person (subject pseudonym): {subject}", f"Period: {period}",
                 f"Disclosures: {len(disclosures)}",
                 f"Produced {utc_text(generated_ms)} by {generated_by}, from the "
                 "tamper-evident audit log (45 CFR 164.528; 34 CFR 99.32)."):
        pdf.cell(0, 5.5, line, new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)
    table = _Table(pdf, WIDTHS)
    table.row(COLUMNS, bold=True)
    for d in disclosures:
        table.row(row(d))
    if not disclosures:
        pdf.ln(2)
        pdf.cell(0, 6, "No disclosures were recorded for this person in this period.")
    return bytes(pdf.output())


class _Table:
    """Rows of wrapped text, drawn line by line with character widths looked up once:
    fpdf2's general table measures every fragment again, which costs a second for an
    accounting of a few dozen disclosures."""

    def __init__(self, pdf: FPDF, widths: tuple[float, ...]) -> None:
        self.pdf = pdf
        self.widths = widths
        self._char_mm: dict[tuple[bool, str], float] = {}

    def _width(self, text: str, bold: bool) -> float:
        total = 0.0
        for ch in text:
            key = (bold, ch)
            found = self._char_mm.get(key)
            if found is None:
                found = self._char_mm[key] = self.pdf.get_string_width(ch)
            total += found
        return total

    def _wrap(self, text: str, width: float, bold: bool) -> list[str]:
        lines: list[str] = []
        space = self._width(" ", bold)
        line, used = "", 0.0
        for word in text.split(" "):
            size = self._width(word, bold)
            if line and used + space + size <= width:
                line, used = f"{line} {word}", used + space + size
                continue
            if line:
                lines.append(line)
            line, used = word, size
            while used > width and len(line) > 1:  # a word longer than the column
                cut, cut_width = 0, 0.0
                while cut < len(line) - 1:
                    step = self._width(line[cut], bold)
                    if cut and cut_width + step > width:
                        break
                    cut, cut_width = cut + 1, cut_width + step
                lines.append(line[:cut])
                line = line[cut:]
                used = self._width(line, bold)
        lines.append(line)
        return lines

    def row(self, cells: tuple[str, ...], bold: bool = False) -> None:
        pdf = self.pdf
        pdf.set_font("DejaVu", "", 8)
        wrapped = [self._wrap(text, width - 2 * PAD_MM, bold)
                   for text, width in zip(cells, self.widths, strict=True)]
        height = max(len(lines) for lines in wrapped) * LINE_MM + 2 * PAD_MM
        if pdf.will_page_break(height):
            pdf.add_page()
        x, y = pdf.l_margin, pdf.get_y()
        if bold:
            pdf.set_fill_color(230, 236, 242)
            pdf.rect(x, y, sum(self.widths), height, style="F")
        for lines, width in zip(wrapped, self.widths, strict=True):
            for n, line in enumerate(lines):
                pdf.set_xy(x + PAD_MM, y + PAD_MM + n * LINE_MM)
                pdf.cell(width - 2 * PAD_MM, LINE_MM, line)
            x += width
        pdf.set_draw_color(160, 160, 160)
        pdf.line(pdf.l_margin, y + height, pdf.l_margin + sum(self.widths), y + height)
        pdf.set_xy(pdf.l_margin, y + height)
