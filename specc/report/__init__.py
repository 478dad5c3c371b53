"""Tables and plots (matplotlib) of recorded runs, to the terminal and to HTML/PNG."""
