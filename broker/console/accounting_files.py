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
from fpdf.fonts import FontFace

from broker.audit import Disclosure
from broker.console.render import HERE, utc_text

COLUMNS = ("Date", "Recipient", "Data disclosed", "Purpose", "Legal basis")
CSV_COLUMNS = (*COLUMNS, "Agreement", "Event type", "Consents relied on", "Decision id")
FONTS = HERE / "fonts"
HEADINGS = FontFace(emphasis="BOLD", fill_color=(230, 236, 242))


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
    pdf.add_font("DejaVu", "B", str(FONTS / "DejaVuSans-Bold.ttf"))
    pdf.set_auto_page_break(auto=True, margin=12)
    pdf.add_page()
    pdf.set_font("DejaVu", "B", 15)
    pdf.cell(0, 9, "Accounting of disclosures", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("DejaVu", "", 9.5)
    for line in (f"Person (subject pseudonym): {subject}", f"Period: {period}",
                 f"Disclosures: {len(disclosures)}",
                 f"Produced {utc_text(generated_ms)} by {generated_by}, from the "
                 "tamper-evident audit log (45 CFR 164.528; 34 CFR 99.32)."):
        pdf.cell(0, 5.5, line, new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)
    pdf.set_font("DejaVu", "", 8)
    with pdf.table(col_widths=(38, 30, 115, 32, 62), text_align="LEFT",
                   line_height=4.2, headings_style=HEADINGS) as table:
        table.row(COLUMNS)
        for d in disclosures:
            table.row(row(d))
    if not disclosures:
        pdf.ln(2)
        pdf.cell(0, 6, "No disclosures were recorded for this person in this period.")
    return bytes(pdf.output())
