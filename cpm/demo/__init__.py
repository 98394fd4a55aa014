"""The end-to-end demo (``manage.py demo``): a summer 2011 demand-response season from Green Button meter data to
bill credits, through the public services of every app.

Modules: ``fleet`` (where the interval data comes from: the Green Button files, copies derived from them, or a seeded
synthetic fleet), ``simulation`` (pure: hot-day choice, device response, seeded opt-outs), ``scenario`` (the steps,
in simulated 2011 time, through the services and tasks), ``report`` (the season summary, the HTML report).
"""
