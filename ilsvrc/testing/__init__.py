"""Test-data generators: a miniature ILSVRC2012 release and the JPEG/PNG writer it
uses (`python -m ilsvrc.testing.sample DIR`)."""
