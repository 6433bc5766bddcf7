"""The suite as a whole: the launcher that starts every process, the ``iot`` command and
the admin command-line. It sits above the services and the kit; nothing imports it."""
