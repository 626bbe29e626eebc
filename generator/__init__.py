"""The sample-data generator behind ``peak generate``: a development tool, not part of the
runtime (the Lambda, the Glue job and CodeBuild never ship it).

:func:`generator.generate.generate` writes the exports; the modules it runs:

- :mod:`generator.behaviour`: the behaviour model's numbers and names, and the random streams;
- :mod:`generator.members`: the members, their habits and the member snapshot's records;
- :mod:`generator.timetable`: the rate calibration and the weekly class timetable;
- :mod:`generator.dirty`: the dirty rows and noise, derived from the contracts;
- :mod:`generator.text`: CSV and timestamp text, and a file's rows in their places.
"""
