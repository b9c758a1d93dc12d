// Message search (§10) as the sidebar uses it: one query at a time, answers
// to an older query dropped, newest first, more pages on request.

import { api } from './session.js';
import { SEARCH_DEFAULT_LIMIT } from './protocol.js';

/** @typedef {import('./api.js').Message} Message */

/** Numbers the queries: an answer to an older one is dropped. */
let serial = 0;

/**
 * The messages matching `q` (after `beforeId` for the next page). Resolves
 * null when a newer query was started meanwhile.
 * @param {string} q @param {string} [beforeId]
 * @returns {Promise<{results: Message[], has_more: boolean}|null>}
 */
export async function searchMessages(q, beforeId) {
  const mine = ++serial;
  const res = await api.search(q, { limit: SEARCH_DEFAULT_LIMIT, before_id: beforeId });
  return mine === serial ? { results: res.results || [], has_more: !!res.has_more } : null;
}

/** Drop the answer of any query in flight. */
export function cancelSearch() { serial++; }
