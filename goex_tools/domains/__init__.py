"""Action domains: filesystem/shell (`fs`), databases (`sql`), REST APIs (`http`).

Each domain classifies its actions into `Proposal`s, runs their effects through
`goex_tools.runtime.execute`, and registers its compensation kinds (prefixed with the
domain's name) with `goex_tools.registry.registry`, so that any process can undo them.
"""
