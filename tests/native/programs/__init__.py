"""Plain openctp-ctp programs (md_program.py, td_program.py) and the harness that runs them."""
