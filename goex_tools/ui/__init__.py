"""`goex ui`: the review page, where a person looks at what agents did, approves what they
ask and undoes from the browser (a front door on the public API, like the CLI).

The web app needs the `ui` extra (`pip install 'goex-tools[ui]'`); importing this package
does not. `WebApprover` (in `goex_tools.policy`) needs nothing more than the core.
"""

from goex_tools.ui.command import add_command, cmd_ui

__all__ = ["add_command", "cmd_ui"]
