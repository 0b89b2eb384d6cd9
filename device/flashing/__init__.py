"""Models onto the Pi, safely: the on-device store with its atomic ``active`` pointer
(``store``), receiving, checking, self-testing and swapping a bundle in (``flasher``,
``bundle_check``, ``self_test``), the HTTP flash service and its status page (``flash_service``,
``web/``), and the control loop's side of the contract: following the active model and
writing status.json (``model_follow``, ``status``, ``status_file``).

May import ``dx7``, conversion's device-side reader, ``device.control``'s interfaces, and aiohttp (the
flash service's server, from the device extra).
"""
