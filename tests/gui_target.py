"""A stand-in for Discord's message box, for the macro messenger test.

A focused Tk `Text`: Enter prints its text as one JSON line on stdout and clears it; Shift+Enter
inserts a newline. Prints "ready" once it has keyboard focus.
"""

from __future__ import annotations

import json
import sys
import tkinter as tk


def main() -> None:
    """Show the message box until killed."""
    sys.stdout.reconfigure(encoding="utf-8")  # type: ignore[union-attr]
    root = tk.Tk()
    root.title("gui_target")
    # Covers the middle of a 1280x720 screen, where Xvfb leaves the pointer.
    root.geometry("800x400+240+160")
    box = tk.Text(root)
    box.pack(fill="both", expand=True)

    def submit(_: tk.Event[tk.Text]) -> str:
        print(json.dumps(box.get("1.0", "end-1c"), ensure_ascii=False), flush=True)
        box.delete("1.0", "end")
        return "break"

    def newline(_: tk.Event[tk.Text]) -> str:
        box.insert("insert", "\n")
        return "break"

    def announce_focus(_: tk.Event[tk.Text]) -> None:
        print("ready", flush=True)
        box.unbind("<FocusIn>")

    box.bind("<Return>", submit)
    box.bind("<Shift-Return>", newline)
    box.bind("<FocusIn>", announce_focus)
    box.focus_force()  # Tk applies it once the window is mapped
    root.mainloop()


if __name__ == "__main__":
    main()
