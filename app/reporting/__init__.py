"""The reporting room: what a person reads, as pure functions of the stats JSON.

* ``verdict``  the plain-language verdict, sample-size needs and number formats
* ``charts``   matplotlib SVG charts, safe for a strict Content-Security-Policy

May import: ``stats`` (and numpy, scipy, matplotlib). Never ``flask``, ``app.storage``
or ``app.service``: the web layer fetches the numbers and hands them over.
"""
