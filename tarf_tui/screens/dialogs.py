"""Small modal dialogs: a yes/no confirmation and the quit question when runs are in flight."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label


class ConfirmScreen(ModalScreen[bool]):
    BINDINGS = [Binding("y", "answer(True)", "Yes"), Binding("n,escape", "answer(False)", "No")]

    def __init__(self, question: str, yes: str = "Yes"):
        super().__init__()
        self.question, self.yes = question, yes

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.question, classes="dialog-question")
            with Horizontal(classes="dialog-buttons"):
                yield Button(f"{self.yes} (y)", variant="error", id="yes")
                yield Button("No (n)", variant="primary", id="no")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, value: bool) -> None:
        self.dismiss(value)


class QuitScreen(ModalScreen[str]):
    """Runs in flight: cancel them, leave them running (picked up on the next start), or stay."""

    BINDINGS = [Binding("c", "answer('cancel')", "Cancel runs & quit"),
                Binding("l", "answer('leave')", "Leave running & quit"),
                Binding("escape,s", "answer('stay')", "Stay")]

    def __init__(self, n: int):
        super().__init__()
        self.n = n

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(f"{self.n} run(s) are queued or running.", classes="dialog-question")
            yield Label("[dim]Left running, engines keep going and are picked up again the next "
                        "time tarf-tui opens; queued runs stay queued and start then.[/dim]")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Cancel runs & quit (c)", variant="error", id="cancel")
                yield Button("Leave running & quit (l)", variant="warning", id="leave")
                yield Button("Stay (esc)", variant="primary", id="stay")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id)

    def action_answer(self, value: str) -> None:
        self.dismiss(value)
