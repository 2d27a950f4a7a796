"""The command-line tools. Run them as scripts (`python tools/train.py ...`) or, once the
package is installed, as `ppdet-gcnet SUBCOMMAND ...` (ppdet_gcnet/commands.py)."""
