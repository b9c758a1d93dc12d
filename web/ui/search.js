// The sidebar's searchbox: it filters the chat list by title at once and,
// from two characters on, lists the messages that contain the text ("Search
// results"); choosing one opens its chat scrolled to that message.

import { ApiError } from '../api.js';
import { ensureConv, convTitle } from '../model.js';
import { searchMessages, cancelSearch } from '../search.js';
import { errorText, listTime } from '../format.js';
import { $, h } from './dom.js';
import { scheduleRender } from './refresh.js';
import { senderName, snippet } from './bubble.js';
import { openConversation } from './chat.js';
import { jumpToMessage } from './messages.js';

/** @typedef {import('../api.js').Message} Message */

/** Shortest query that searches messages (one character only filters the list). */
export const MIN_MESSAGE_QUERY = 2;
/** Wait this long after the last keystroke before asking the server. */
const DEBOUNCE_MS = 250;

let query = '';
let timer = /** @type {any} */ (null);
/** The results shown, and whether the server has more. */
let shown = /** @type {Message[]} */ ([]);
let hasMore = false;

/** The text in the searchbox, trimmed ('' when none). */
export function searchQuery() { return query; }

/** Empty the search (log out). */
export function clearSearch() {
  query = '';
  /** @type {HTMLInputElement} */ ($('search-input')).value = '';
  cancelSearch();
  shown = [];
  hasMore = false;
  renderResults();
}

/** `text` with the first match of `q` marked. @param {string} text @param {string} q */
function highlighted(text, q) {
  const el = h('span', 'hit-text');
  el.dir = 'auto';
  const i = text.toLowerCase().indexOf(q.toLowerCase());
  if (i < 0) { el.textContent = text; return el; }
  el.append(document.createTextNode(text.slice(0, i)), h('mark', '', text.slice(i, i + q.length)),
    document.createTextNode(text.slice(i + q.length)));
  return el;
}

/** A window of the text around the match, so it shows even in a long message. @param {string} text @param {string} q */
function around(text, q) {
  const one = text.replace(/\s+/g, ' ');
  const i = one.toLowerCase().indexOf(q.toLowerCase());
  return i > 40 ? snippet(`…${one.slice(i - 30)}`) : snippet(one);
}

function renderResults() {
  const list = $('search-results');
  const searching = query.length >= MIN_MESSAGE_QUERY;
  list.hidden = !searching || !shown.length;
  $('search-heading').hidden = !searching;
  list.replaceChildren();
  for (const m of shown) {
    const li = h('li', 'search-hit');
    const btn = /** @type {HTMLButtonElement} */ (h('button', 'search-open'));
    btn.type = 'button';
    btn.dataset.conv = m.conversation_id;
    btn.dataset.seq = String(m.seq);
    const c = ensureConv(m.conversation_id);
    const top = h('span', 'hit-top');
    const title = h('span', 'hit-title', convTitle(c));
    title.dir = 'auto';
    top.append(title, h('time', 'hit-time', listTime(m.sent_at_ms)));
    const line = h('span', 'hit-line');
    line.append(h('span', 'sender-prefix', `${senderName(m.sender_id)}: `));
    line.append(highlighted(around(m.text || '', query), query));
    btn.append(top, line);
    li.append(btn);
    list.append(li);
  }
  if (hasMore) {
    const li = h('li', 'search-more');
    const btn = /** @type {HTMLButtonElement} */ (h('button', 'link-btn', 'More results'));
    btn.type = 'button';
    btn.dataset.more = '1';
    li.append(btn);
    list.append(li);
  }
}

/** Ask the server for the current query (a next page with `more`). @param {boolean} [more] */
async function runSearch(more = false) {
  const q = query;
  const status = $('search-status');
  if (q.length < MIN_MESSAGE_QUERY) { shown = []; hasMore = false; status.textContent = ''; renderResults(); return; }
  if (!more) status.textContent = 'Searching messages…';
  try {
    const last = shown[shown.length - 1];
    const res = await searchMessages(q, more && last ? last.message_id : undefined);
    if (!res || q !== query) return;
    shown = more ? [...shown, ...res.results] : res.results;
    hasMore = res.has_more;
    status.textContent = shown.length ? `${shown.length}${hasMore ? '+' : ''} message${shown.length === 1 ? '' : 's'} found.` : 'No messages found.';
  } catch (e) {
    status.textContent = errorText(e instanceof ApiError ? e.code : 'internal');
  }
  renderResults();
  scheduleRender();
}

/** Wire the searchbox and the results (boot). */
export function setupSearch() {
  const input = /** @type {HTMLInputElement} */ ($('search-input'));
  input.addEventListener('input', () => {
    const q = input.value.trim();
    if (q === query) return;
    query = q;
    // Results of another query are never shown (nor clicked) under this one.
    shown = [];
    hasMore = false;
    $('search-status').textContent = q.length >= MIN_MESSAGE_QUERY ? 'Searching messages…' : '';
    renderResults();
    scheduleRender();
    clearTimeout(timer);
    if (query.length < MIN_MESSAGE_QUERY) { cancelSearch(); runSearch(); return; }
    timer = setTimeout(() => runSearch(), DEBOUNCE_MS);
  });
  input.addEventListener('keydown', (e) => {
    if (e.key === 'Escape' && input.value) { e.stopPropagation(); clearSearch(); scheduleRender(); }
  });
  $('search-results').addEventListener('click', async (e) => {
    const btn = /** @type {HTMLElement|null} */ (/** @type {HTMLElement} */ (e.target).closest('button'));
    if (!btn) return;
    if (btn.dataset.more) { runSearch(true); return; }
    const convId = btn.dataset.conv || '';
    const seq = Number(btn.dataset.seq);
    openConversation(convId);
    await jumpToMessage(seq);
  });
}
