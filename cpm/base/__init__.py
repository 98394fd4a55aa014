"""The shared base of cpm: helpers every app uses (time, money, audit, transitions, capabilities, API and
admin base classes, bulk writes, jobs). It imports no app: ``lint-imports`` checks it."""
