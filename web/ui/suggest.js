// Suggestions while typing a username (New chat, New group, adding
// members): people the user already shares a conversation with whose
// username or display name starts with what was typed, plus an exact
// username match for anyone (`GET /v1/users?username=`). Never the user
// themself. A listbox the textbox controls: arrow keys pick, Enter takes, Escape closes.

import { ApiError } from '../api.js';
import { me } from '../session.js';
import { convs } from '../model.js';
import { knownUser, lookupUsername } from '../users.js';
import { normalizeUsername } from '../format.js';
import { USERNAME_PATTERN } from '../protocol.js';
import { h } from './dom.js';

/** Most suggestions shown at once. */
const MAX_SUGGESTIONS = 8;
/** Wait this long after the last keystroke before asking the server. */
const LOOKUP_DELAY_MS = 250;

let serial = 0;

/** @typedef {{user_id: string, username: string, display_name?: string}} User */

/** People I share a conversation with (cached users only), not me. */
function contacts() {
  const out = /** @type {Map<string, User>} */ (new Map());
  for (const c of convs.values()) {
    for (const id of c.memberIds) {
      if (id === me() || out.has(id)) continue;
      const u = knownUser(id);
      if (u && u.username) out.set(id, u);
    }
  }
  return [...out.values()];
}

/** Whether `u` matches the typed prefix `q` (lowercase). @param {User} u @param {string} q */
function matches(u, q) {
  if (u.username.startsWith(q)) return true;
  const dn = (u.display_name || '').toLowerCase();
  return !!dn && (dn.startsWith(q) || dn.split(/\s+/).some((w) => w.startsWith(q)));
}

/**
 * Suggest usernames under `input`.
 * @param {HTMLInputElement} input
 * @param {{multi?: boolean, exclude?: () => Set<string>}} [opts] multi: a list of names, the last one is completed; exclude: user ids not to offer
 */
export function attachSuggestions(input, opts = {}) {
  const list = /** @type {HTMLUListElement} */ (h('ul', 'suggestions'));
  const id = `suggest-${++serial}`;
  list.id = id;
  list.setAttribute('role', 'listbox');
  list.setAttribute('aria-label', 'Suggestions');
  list.hidden = true;
  const field = input.closest('label') || input;
  field.after(list);
  // Stays a textbox (its name is the contract); it owns the list of options.
  input.setAttribute('aria-autocomplete', 'list');
  input.setAttribute('aria-controls', id);
  /** @type {User[]} */
  let shown = [];
  let active = -1;
  let lookupTimer = /** @type {any} */ (null);
  /** The exact match the server found, for the query it was found for. */
  let exact = /** @type {{q: string, user: User|null}} */ ({ q: '', user: null });

  const tokens = () => input.value.split(/[\s,;]+/);
  const query = () => normalizeUsername(opts.multi ? tokens().pop() || '' : input.value);

  function close() {
    shown = [];
    active = -1;
    list.hidden = true;
    list.replaceChildren();
    input.removeAttribute('aria-activedescendant');
  }

  function render() {
    const q = query();
    if (!q) { close(); return; }
    const skip = opts.exclude ? opts.exclude() : new Set();
    if (opts.multi) for (const t of tokens().slice(0, -1)) { const n = normalizeUsername(t); for (const u of contacts()) if (u.username === n) skip.add(u.user_id); }
    const found = contacts().filter((u) => !skip.has(u.user_id) && matches(u, q));
    if (exact.q === q && exact.user && exact.user.user_id !== me() && !skip.has(exact.user.user_id)
        && !found.some((u) => u.user_id === /** @type {User} */ (exact.user).user_id)) found.unshift(exact.user);
    found.sort((a, b) => Number(b.username === q) - Number(a.username === q) || a.username.localeCompare(b.username));
    shown = found.slice(0, MAX_SUGGESTIONS);
    if (!shown.length) { close(); return; }
    active = Math.min(active, shown.length - 1);
    list.replaceChildren(...shown.map((u, i) => {
      const li = h('li', 'suggestion');
      li.id = `${id}-${i}`;
      li.setAttribute('role', 'option');
      li.setAttribute('aria-selected', String(i === active));
      li.append(h('span', 'suggestion-name', u.username));
      if (u.display_name && u.display_name !== u.username) li.append(h('span', 'suggestion-detail', u.display_name));
      li.addEventListener('mousedown', (e) => { e.preventDefault(); pick(u); });
      return li;
    }));
    list.hidden = false;
    if (active >= 0) input.setAttribute('aria-activedescendant', `${id}-${active}`);
    else input.removeAttribute('aria-activedescendant');
  }

  /** @param {User} u */
  function pick(u) {
    if (opts.multi) {
      const parts = tokens().slice(0, -1).filter(Boolean);
      input.value = `${[...parts, u.username].join(', ')}, `;
    } else {
      input.value = u.username;
    }
    close();
    input.focus();
  }

  function lookupLater() {
    clearTimeout(lookupTimer);
    const q = query();
    if (!USERNAME_PATTERN.test(q) || exact.q === q) return;
    lookupTimer = setTimeout(async () => {
      let user = null;
      try { user = await lookupUsername(q); } catch (e) { if (!(e instanceof ApiError)) throw e; }
      exact = { q, user };
      if (query() === q && document.activeElement === input) render();
    }, LOOKUP_DELAY_MS);
  }

  input.addEventListener('input', () => { active = -1; render(); lookupLater(); });
  input.addEventListener('focus', () => { if (query()) render(); });
  // Leaving the form closes the list; moving to its buttons does not, so
  // nothing shifts under a click on "Start chat".
  input.addEventListener('blur', (e) => {
    const to = /** @type {Node|null} */ (e.relatedTarget);
    if (!to || !input.form || !input.form.contains(to)) close();
  });
  input.addEventListener('keydown', (e) => {
    if (list.hidden) return;
    if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
      e.preventDefault();
      const n = shown.length;
      active = e.key === 'ArrowDown' ? (active + 1) % n : (active - 1 + n) % n;
      render();
    } else if (e.key === 'Enter' && active >= 0) {
      e.preventDefault();
      pick(shown[active]);
    } else if (e.key === 'Escape') {
      e.stopPropagation();
      close();
    }
  });
  input.form?.addEventListener('submit', () => close());
  return { close };
}
