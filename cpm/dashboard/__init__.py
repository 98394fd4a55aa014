"""The program administrator's dashboard and the event page (a feature on top: reads every app, writes nothing)."""
