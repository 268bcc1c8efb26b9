"""The `blastscan` app: every command, in order, with its help."""

import pytest
from typer.testing import CliRunner

from blastscan.cli import app

runner = CliRunner()
COMMANDS = ["train", "extract", "select", "evaluate", "reproduce", "robustness"]
ALL_COMMANDS = ["train", "extract", "select", "evaluate", "reproduce", "bundle", "predict",
                "explain", "export", "serve", "robustness", "compare"]  # fmt: skip


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command: str):
    result = runner.invoke(app, [command, "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "--help" in result.output


def test_help_lists_every_command_in_order():
    import typer.main

    group = typer.main.get_command(app)
    assert list(group.list_commands(None)) == ALL_COMMANDS
