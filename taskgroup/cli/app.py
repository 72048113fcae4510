"""The typer application that every command module registers its verb on."""

import typer

app = typer.Typer(
    name="taskgroup",
    help=(
        "Decide which perception tasks should share a network, train the candidates, and "
        "ship the chosen networks under a measured latency budget "
        "(Standley et al., 'Which Tasks Should Be Learned Together in Multi-task Learning?', ICML 2020)."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def output_console():
    """A rich console for result tables. Piped or redirected output is not cut at 80 columns:
    it gets a wide page (as a terminal would, tables wrap names instead of cutting them)."""
    from rich.console import Console

    console = Console()
    return console if console.is_terminal else Console(width=160)
