// Tables that scroll sideways (a phone, a zoomed page) must be reachable by
// keyboard, or their hidden columns can be read with a mouse only (WCAG
// 2.1.1): a `.table-scroll` that overflows becomes a focusable region, named
// after its section's heading, which the arrow keys scroll; one that fits is
// left out of the Tab order. Preact leaves these attributes alone: no
// component sets them.
const WATCHED = new WeakSet();

function nameOf(box) {
  const table = box.querySelector("table");
  const own = table && (table.getAttribute("aria-label") || (table.caption && table.caption.textContent));
  const section = box.closest("section, aside, .card");
  const heading = section && section.querySelector("h2, h3, h4");
  const title = (own || (heading && heading.textContent) || "Table").trim();
  return `${title} (scrolls sideways)`;
}

function mark(box) {
  if (box.scrollWidth > box.clientWidth + 1) {
    if (box.getAttribute("tabindex") !== "0") box.setAttribute("tabindex", "0");
    box.setAttribute("role", "region");
    box.setAttribute("aria-label", nameOf(box));
  } else if (box.hasAttribute("tabindex")) {
    // Not while it holds the focus: a reflow must not drop a reader's place.
    if (document.activeElement === box) return;
    box.removeAttribute("tabindex");
    box.removeAttribute("role");
    box.removeAttribute("aria-label");
  }
}

// Watches `root` for scrolling tables as screens come and go, and as they
// resize (the window, the zoom, rows arriving).
export function watchScrollRegions(root) {
  const resized = new ResizeObserver((entries) => {
    for (const entry of entries) mark(entry.target.closest(".table-scroll") || entry.target);
  });
  const scan = () => {
    for (const box of root.querySelectorAll(".table-scroll")) {
      for (const part of [box, box.querySelector("table")]) {
        if (part && !WATCHED.has(part)) { WATCHED.add(part); resized.observe(part); }
      }
      mark(box);
    }
  };
  // One kept as a Tab stop while it held the focus is looked at again when it loses it.
  root.addEventListener("focusout", (event) => {
    if (event.target.classList && event.target.classList.contains("table-scroll")) mark(event.target);
  });
  let queued = 0;
  new MutationObserver(() => {
    if (queued) return;
    queued = requestAnimationFrame(() => { queued = 0; scan(); });
  }).observe(root, { childList: true, subtree: true });
  scan();
}
