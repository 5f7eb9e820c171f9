"""One way to write a time across the site and the admin: 2026-12-06 08:35:12 (24 hours, to the
second, as logs and the API's ISO 8601 read), not the English locale's "Dec. 6, 2026, 8:35 a.m."."""
DATETIME_FORMAT = "Y-m-d H:i:s"
SHORT_DATETIME_FORMAT = "Y-m-d H:i:s"
DATE_FORMAT = SHORT_DATE_FORMAT = "Y-m-d"
TIME_FORMAT = "H:i:s"
DATETIME_INPUT_FORMATS = ["%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M"]
DATE_INPUT_FORMATS = ["%Y-%m-%d"]
