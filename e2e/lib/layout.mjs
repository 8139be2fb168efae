// What a person can see and reach on the page at a given window size: whether each control is on top
// where they would click it, and whether one card ever paints over another while they scroll.
// Everything is measured in the browser, after the scroll has been laid out (two animation frames).

/** The common screen sizes the page is checked at (CSS pixels). */
export const SIZES = [
  { name: "1280x800", viewport: { width: 1280, height: 800 } },
  { name: "1280x900", viewport: { width: 1280, height: 900 } },
  { name: "1366x768", viewport: { width: 1366, height: 768 } },
  { name: "1440x900", viewport: { width: 1440, height: 900 } },
  { name: "1920x1080", viewport: { width: 1920, height: 1080 } },
  { name: "390x844", viewport: { width: 390, height: 844 }, deviceScaleFactor: 3, isMobile: true, hasTouch: true },
];

/**
 * What a person reads and clicks in each panel. The radios of the switches are visually hidden: the
 * labels are what is clicked.
 */
export const CONTROLS = {
  stream: [
    'label[for="app-ws"]', 'label[for="app-echo"]', "#chart-title", "#chart", "#count-pending", "#log-title",
    "#message", "#send", 'label[for="filter-all"]', 'label[for="filter-chat"]', 'label[for="filter-push"]',
    "#clear-log",
  ],
  room: ["#room-title", "#room-status", "#room-you", "#room-rename", "#room-log", "#room-say", "#room-send"],
};

/**
 * Scrolls each control into view as a person would, coming from the top of the page (it appears at
 * the bottom edge) and from the end (it appears at the top edge, under the sticky header if nothing
 * leaves room for it), and asks the browser what is on top at its centre. Returns one line per control
 * that is not itself (or something inside it) at that point: empty when everything can be clicked.
 * @param {import("playwright-core").Page} page
 * @param {string[]} selectors
 * @returns {Promise<string[]>}
 */
export function unreachable(page, selectors) {
  return page.evaluate(async (sels) => {
    const settled = () => new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)));
    /** @param {Element | null} n */
    const describe = (n) => {
      if (n === null) return "nothing (off screen)";
      const box = n.closest(".card, .topbar");
      const inside = box === null ? "" : ` in .${box.classList[box.classList.length - 1]}`;
      return `${n.tagName.toLowerCase()}${n.id ? `#${n.id}` : ""}${inside}`;
    };
    const misses = [];
    for (const from of ["top", "end"]) {
      for (const sel of sels) {
        const el = document.querySelector(sel);
        if (el === null) {
          misses.push(`${sel}: not on the page`);
          continue;
        }
        scrollTo(0, from === "top" ? 0 : document.documentElement.scrollHeight);
        el.scrollIntoView({ block: "nearest", inline: "nearest" });
        await settled();
        const r = el.getBoundingClientRect();
        const [x, y] = [r.left + r.width / 2, r.top + r.height / 2];
        const hit = document.elementFromPoint(x, y);
        if (hit === null || !el.contains(hit)) {
          misses.push(`${sel}, scrolled to from the ${from} (page at y=${Math.round(scrollY)}), centre (${Math.round(x)}, ${Math.round(y)}): ${describe(hit)} is on top`);
        }
      }
    }
    scrollTo(0, 0);
    return misses;
  }, selectors);
}

/**
 * Scrolls the page from top to end in quarter-viewport steps and reports every position at which two
 * cards overlap on screen (a sticky card painted over another one). Empty when none ever do.
 * @param {import("playwright-core").Page} page
 * @returns {Promise<string[]>}
 */
export function overlappingCards(page) {
  return page.evaluate(async () => {
    const settled = () => new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)));
    const cards = [...document.querySelectorAll("main .card")];
    const name = (/** @type {Element} */ c) => `.${c.classList[c.classList.length - 1]}`;
    const end = document.documentElement.scrollHeight - innerHeight;
    const found = [];
    for (let y = 0; ; y = Math.min(end, y + innerHeight / 4)) {
      scrollTo(0, y);
      await settled();
      const rects = cards.map((c) => c.getBoundingClientRect());
      for (let i = 0; i < cards.length; i++) {
        for (let j = i + 1; j < cards.length; j++) {
          const [a, b] = [rects[i], rects[j]];
          const w = Math.min(a.right, b.right) - Math.max(a.left, b.left);
          const h = Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top);
          if (w > 1 && h > 1) found.push(`at y=${Math.round(scrollY)}: ${name(cards[i])} and ${name(cards[j])} overlap by ${Math.round(w)}x${Math.round(h)} px`);
        }
      }
      if (y >= end) break;
    }
    scrollTo(0, 0);
    return found;
  });
}
