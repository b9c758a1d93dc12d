// Users: the cache of id → username, display name and profile photo (kept
// in localStorage across visits), fetching unknown users once, and looking
// usernames up.

import { ApiError } from './api.js';
import * as store from './store.js';
import { api, currentSession } from './session.js';
import { errorText } from './format.js';
import { scheduleRender } from './ui/refresh.js';

/** @typedef {{user_id: string, username: string, display_name?: string, avatar_media_id?: string}} User */

/** @type {Map<string, User>} */
const users = new Map();
/** @type {Map<string, Promise<void>>} */
const userFetches = new Map();
/** Users from the localStorage cache: shown at once, re-checked once per page load. */
const staleUsers = /** @type {Set<string>} */ (new Set());

/** Load the cache of an earlier visit (boot). */
export function loadCachedUsers() {
  for (const u of Object.values(store.loadUserCache())) {
    if (u && u.user_id && u.username) {
      users.set(u.user_id, u);
      staleUsers.add(u.user_id);
    }
  }
}

/** @param {User} u */
export function rememberUser(u) {
  if (!u || !u.user_id) return;
  staleUsers.delete(u.user_id);
  const before = users.get(u.user_id);
  const same = before && before.username === u.username;
  const displayName = u.display_name ?? (same ? before.display_name : undefined);
  // A whole user object (it has a display name) without a photo has none;
  // a bare {user_id, username} knows nothing about it.
  const avatar = u.avatar_media_id ?? (u.display_name === undefined && same ? before.avatar_media_id : undefined);
  /** @type {User} */
  const entry = { user_id: u.user_id, username: u.username, display_name: displayName };
  if (avatar) entry.avatar_media_id = avatar;
  users.set(u.user_id, entry);
  store.saveUserCache(Object.fromEntries(users));
}

/** Username for display; fetches (once) and re-renders when unknown. @param {string} id */
export function username(id) {
  const u = users.get(id);
  if (u && staleUsers.has(id) && currentSession()) {
    staleUsers.delete(id);
    fetchUser(id);
  }
  if (u) return u.username;
  fetchUser(id);
  return '…';
}

/**
 * The name to show for a user: the display name they chose, else the
 * username; fetches (once) and re-renders when unknown. @param {string} id
 */
export function displayName(id) {
  const name = username(id);
  const u = users.get(id);
  return (u && u.display_name) || name;
}

/** When each user was last re-read on purpose (`revalidate`). */
const revalidated = /** @type {Map<string, number>} */ (new Map());
/** Re-read a user's profile at most this often (a burst of chat switches costs one read). */
const REVALIDATE_MS = 1000;

/**
 * Re-read a user we show (a chat with them opened): a display name changed
 * elsewhere shows without a reload. At most every REVALIDATE_MS per user.
 * @param {string} id
 */
export function revalidate(id) {
  const now = Date.now();
  if (!id || !currentSession() || now - (revalidated.get(id) || 0) < REVALIDATE_MS) return;
  revalidated.set(id, now);
  if (userFetches.has(id) && users.has(id)) userFetches.delete(id);
  fetchUser(id);
}

/** @param {string} id */
function fetchUser(id) {
  if (!id || userFetches.has(id)) return userFetches.get(id);
  const p = api.user(id).then((u) => { rememberUser(u); scheduleRender(); })
    .catch(() => { setTimeout(() => userFetches.delete(id), 5000); });
  userFetches.set(id, p);
  return p;
}

/** @param {string} name @returns {Promise<User>} */
export async function lookupUsername(name) {
  for (const u of users.values()) if (u.username === name && !staleUsers.has(u.user_id)) return u;
  const u = await api.userByName(name);
  rememberUser(u);
  return u;
}

/**
 * Look usernames up. Either all their ids, or the sentence that explains
 * which one failed.
 * @param {string[]} names
 * @returns {Promise<{ids: string[], error?: undefined} | {ids?: undefined, error: string}>}
 */
export async function resolveUsernames(names) {
  const results = await Promise.allSettled(names.map((n) => lookupUsername(n)));
  const missing = [];
  const ids = [];
  for (let i = 0; i < results.length; i++) {
    const r = results[i];
    if (r.status === 'fulfilled') ids.push(r.value.user_id);
    else if (r.reason instanceof ApiError && r.reason.code === 'not_found') missing.push(names[i]);
    else return { error: errorText(r.reason instanceof ApiError ? r.reason.code : 'internal') };
  }
  if (missing.length) {
    return {
      error: missing.length === 1
        ? errorText('not_found', { context: 'user', subject: missing[0] })
        : `These users don’t exist: ${missing.join(', ')}.`,
    };
  }
  return { ids };
}

/** A user's profile photo (a media id), or '' (none, or not known yet). @param {string} id */
export function avatarOf(id) {
  const u = users.get(id);
  return (u && u.avatar_media_id) || '';
}

/** A user we already know (cached), or null; never fetches. @param {string} id */
export function knownUser(id) {
  return users.get(id) || null;
}
