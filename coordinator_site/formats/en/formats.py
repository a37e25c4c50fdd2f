"""Date formats for Django's own rendering (the admin): ISO order in UTC, as on the pages
("2026-12-01 23:50:00 UTC"), instead of the en-us "Dec. 1, 2026, 11:50 p.m."."""

DATETIME_FORMAT = r"Y-m-d H:i:s \U\T\C"
SHORT_DATETIME_FORMAT = DATETIME_FORMAT
DATE_FORMAT = "Y-m-d"
SHORT_DATE_FORMAT = DATE_FORMAT
TIME_FORMAT = "H:i:s"
