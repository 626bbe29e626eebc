from peak.cli import app

app(prog_name="peak")
