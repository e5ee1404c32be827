"""A page as the browser rendered it (Chromium's `--dump-dom`), and the script that makes a copy
of a page say whether each of its images decoded."""

from __future__ import annotations

from html.parser import HTMLParser

# Added to a copy of the page only (the pages themselves have no script): after the load event,
# each image says whether it decoded, and the body says the check ran.
CHECK_IMAGES = """<script>
window.addEventListener("load", () => {
  for (const img of document.images)
    img.dataset.loaded = String(img.complete && img.naturalWidth > 0);
  document.body.dataset.checked = "yes";
});
</script>"""


class Dom(HTMLParser):
    """Every start tag of a document with its attributes, in order."""

    def __init__(self, document: str):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.feed(document)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def with_class(self, name: str) -> list[dict]:
        return [a for _, a in self.tags if name in (a.get("class") or "").split()]
