"""Consent and provenance: the only package that writes media.

- ``consent``: the consent ledger; ``check_consent`` gates every generation run before any compute.
- ``writer``: ``save_image``, ``save_video``, ``save_audio``, ``save_figure`` mark every output with a
  visible label, an invisible watermark (``watermark_image``, ``watermark_audio``), synthetic-media
  ``metadata``, a signed C2PA manifest (``c2pa_sign``, keys from ``keys``) and a ``provenance`` row.
- ``verify``: reads all of those back (``python -m consent_and_watermark verify FILE``).
"""
