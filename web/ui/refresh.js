// The render schedule: lets the state modules ask for a repaint without
// importing the UI (which imports them). `ui/render.js` registers the real
// painters at boot; until then every request is a no-op.

/**
 * @typedef {{
 *   all: (opts: {stickToBottom?: boolean}) => void,
 *   header: () => void,
 *   banner: (detail?: {retryInMs?: number}) => void,
 * }} Painters
 */

/** @type {Painters} */
let painters = { all: () => {}, header: () => {}, banner: () => {} };

/** @param {Painters} p */
export function setPainters(p) { painters = p; }

let renderQueued = false;
let stickRequested = false;

/**
 * Batch renders into one per frame (with a timer fallback for hidden tabs).
 * @param {{stickToBottom?: boolean}} [opts] stickToBottom: scroll the open chat to its newest message
 */
export function scheduleRender(opts = {}) {
  if (opts.stickToBottom) stickRequested = true;
  if (renderQueued) return;
  renderQueued = true;
  const run = () => {
    if (!renderQueued) return;
    renderQueued = false;
    const stick = stickRequested;
    stickRequested = false;
    painters.all({ stickToBottom: stick });
  };
  requestAnimationFrame(run);
  setTimeout(run, 100);
}

/** Forget a queued request to scroll to the newest message (a jump to an older one came after it). */
export function cancelStickToBottom() { stickRequested = false; }

/** Repaint everything now (a chat just opened: no frame's delay). @param {{stickToBottom?: boolean}} [opts] */
export function renderNow(opts = {}) { painters.all(opts); }

/** Repaint the open chat's header now (presence and typing change often and cheaply). */
export function renderHeader() { painters.header(); }

/** Repaint the connection banner now. @param {{retryInMs?: number}} [detail] */
export function renderBanner(detail) { painters.banner(detail); }
