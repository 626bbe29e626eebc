from peak.cli import console_script

console_script()
