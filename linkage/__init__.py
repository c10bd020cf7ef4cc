"""Record linkage: resolve an agency's view of a person to one Handoff person id.

Pure library, no broker imports. Deterministic rules first (an agency id seen before, an
exact normalised name and date of birth), then a Fellegi-Sunter model trained with Splink
and compiled into a pure-Python scorer for the stream. State lives behind the
`PersonIndex` port and is rebuilt from an ordered sequence of `LinkageEvent` values.

Importing this package is cheap: Splink, DuckDB, clkhash and anonlink are imported only by
the modules that use them (`splink_model`, `retrain`, `clk`).
"""
