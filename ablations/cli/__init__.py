"""The command on top: ablate.py's flags (parser.py), what it prints (output.py), the command
itself (main.py), and the cluster launchers (launch/)."""
