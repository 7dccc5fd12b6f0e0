import six

GREETING = six.ensure_str(b"carried")
