"""English formats: a datetime is always shown with its zone's abbreviation (the current zone: the program's on its
pages, ``CPM_DISPLAY_TIME_ZONE`` elsewhere), in the ISO-like order people type it back."""

DATETIME_FORMAT = "Y-m-d H:i T"
SHORT_DATETIME_FORMAT = "Y-m-d H:i T"
