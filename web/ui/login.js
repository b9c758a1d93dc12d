// The log-in / sign-up screen: the form (with a display name for new
// accounts), its checks before asking the server (the protocol's username
// and password limits), saying so when a username will be lowercased, and
// its error texts.

import { ApiError } from '../api.js';
import { USERNAME_PATTERN, PASSWORD_MIN_CHARS, USERNAME_MIN_CHARS, USERNAME_MAX_CHARS } from '../protocol.js';
import { signIn } from '../session.js';
import { errorText, normalizeUsername } from '../format.js';
import { $ } from './dom.js';

/** @param {(session: import('../store.js').StoredSession) => void} onSignedIn */
export function setupLoginForm(onSignedIn) {
  const form = /** @type {HTMLFormElement} */ ($('auth-form'));
  const userEl = /** @type {HTMLInputElement} */ ($('auth-username'));
  const passEl = /** @type {HTMLInputElement} */ ($('auth-password'));
  const errEl = $('auth-error');
  const nameEl = /** @type {HTMLInputElement} */ ($('auth-display-name'));
  const noteEl = $('auth-username-note');
  // Usernames are lowercase on the server: say so as it happens, never silently.
  userEl.addEventListener('input', () => {
    const typed = userEl.value.trim().replace(/^@/, '');
    const lower = normalizeUsername(userEl.value);
    noteEl.textContent = typed !== lower && lower ? `Usernames are lowercase: this one is “${lower}”.` : '';
  });
  const buttons = [/** @type {HTMLButtonElement} */ ($('login-button')), /** @type {HTMLButtonElement} */ ($('register-button'))];

  /** @param {boolean} register */
  async function submit(register) {
    const name = normalizeUsername(userEl.value);
    const password = passEl.value;
    errEl.textContent = '';
    if (!name) { errEl.textContent = 'Enter your username.'; userEl.focus(); return; }
    if (!password) { errEl.textContent = 'Enter your password.'; passEl.focus(); return; }
    if (register) {
      if (!USERNAME_PATTERN.test(name)) {
        errEl.textContent = `Usernames are ${USERNAME_MIN_CHARS}–${USERNAME_MAX_CHARS} characters: lowercase letters, digits, “_” or “.”.`;
        userEl.focus();
        return;
      }
      if ([...password].length < PASSWORD_MIN_CHARS) {
        errEl.textContent = `Passwords need at least ${PASSWORD_MIN_CHARS} characters.`;
        passEl.focus();
        return;
      }
    }
    buttons.forEach((b) => { b.disabled = true; });
    form.setAttribute('aria-busy', 'true');
    try {
      let session;
      try {
        session = await signIn(name, password, register, register ? nameEl.value.trim() : undefined);
      } catch (e) {
        const step = /** @type {any} */ (e).step === 'register' ? 'register' : 'login';
        errEl.textContent = errorText(e instanceof ApiError ? e.code : 'internal', { context: step });
        return;
      }
      passEl.value = '';
      nameEl.value = '';
      noteEl.textContent = '';
      onSignedIn(session);
    } finally {
      buttons.forEach((b) => { b.disabled = false; });
      form.removeAttribute('aria-busy');
    }
  }

  form.addEventListener('submit', (e) => { e.preventDefault(); submit(false); });
  $('register-button').addEventListener('click', () => submit(true));
}

/** Show the log-in screen with `message` (why the session ended, if it did). */
export function showLogin(message = '') {
  $('app-view').hidden = true;
  $('auth-view').hidden = false;
  const title = $('app-title');
  title.classList.remove('visually-hidden');
  $('auth-brand').append(title);
  $('auth-error').textContent = message;
  /** @type {HTMLInputElement} */ ($('auth-password')).value = '';
  /** @type {HTMLInputElement} */ ($('auth-username')).focus();
}
