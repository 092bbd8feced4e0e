"""What every tarf-tui screen shares: cheap screen switches.

Textual 8 re-applies the whole stylesheet to a screen each time it becomes current again
(``ScreenResume(refresh_styles=True)``) and each screen's ``Footer`` rebuilds all its key labels
whenever bindings are refreshed; on the builder that cost 0.3-0.6 s per F2 (bench/bench_tui.py).
Our screens stay installed and their styles only change when the theme does, so
``TarfScreen`` re-applies styles only after a theme change, and ``StableFooter`` rebuilds only
when the keys it shows changed.
"""

from __future__ import annotations

from textual import events
from textual.screen import Screen
from textual.widgets import Footer


class StableFooter(Footer):
    """A ``Footer`` that recomposes only when the active bindings it shows differ."""

    _shown: tuple | None = None

    def bindings_changed(self, screen: Screen) -> None:
        if self.is_attached and screen is self.screen and screen.app.app_focus:
            sig = tuple((key, b.binding.description, b.binding.show, b.enabled, b.tooltip)
                        for key, b in screen.active_bindings.items())
            if sig == self._shown:
                self._bindings_ready = True
                return
            self._shown = sig
        super().bindings_changed(screen)


class TarfScreen(Screen):
    """A screen that keeps its computed styles across switches unless the theme changed."""

    _styled_theme: str | None = None

    def _on_screen_resume(self, event: events.ScreenResume) -> None:
        theme = self.app.theme
        if self._styled_theme == theme:
            event.refresh_styles = False  # Screen._on_screen_resume (next in the MRO) reads it
        self._styled_theme = theme
