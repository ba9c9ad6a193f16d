"""The exchange's signature policy: the main file's signatures verified by the signature service,
before the send (``require``) or just after it (``flag``), the verdict kept with the document."""
