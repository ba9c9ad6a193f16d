#!/usr/bin/env bash
# Make sure Tesseract and its Vietnamese language data are installed (the archive OCRs scans
# without a text layer): Debian packages tesseract-ocr and tesseract-ocr-vie. Installs them with
# apt-get when run as root; otherwise says what to install.
set -u

ocr_ready() { command -v tesseract >/dev/null && tesseract --list-langs 2>/dev/null | grep -qx vie; }

if ! ocr_ready; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing tesseract-ocr tesseract-ocr-vie…"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tesseract-ocr tesseract-ocr-vie) >/dev/null
  fi
  ocr_ready || { echo "Tesseract with Vietnamese is missing: sudo apt-get install tesseract-ocr tesseract-ocr-vie" >&2; exit 1; }
fi
