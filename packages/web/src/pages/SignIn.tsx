import { useEffect, useRef, useState, type FormEvent } from 'react';
import { api, ApiError, type WhoAmI } from '../api';

export function SignIn(props: { message: string | undefined; onSignedIn: (who: WhoAmI, token: string) => void }) {
  const [token, setToken] = useState('');
  const [error, setError] = useState<string | undefined>(props.message);
  const [busy, setBusy] = useState(false);
  const input = useRef<HTMLInputElement>(null);

  useEffect(() => {
    document.title = 'Sign in · Uptide';
    input.current?.focus();
  }, []);

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    const t = token.trim();
    if (t === '') {
      setError('Paste an API token.');
      return;
    }
    setBusy(true);
    setError(undefined);
    try {
      props.onSignedIn(await api.whoami(t), t);
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) setError(`This token was refused: ${err.message}.`);
      else setError(err instanceof Error ? err.message : String(err));
      input.current?.select();
    } finally {
      setBusy(false);
    }
  };

  return (
    <main className="signin" id="main">
      <form onSubmit={submit} className="card" aria-labelledby="signin-title" noValidate>
        <div className="brand big">
          <img src="/favicon.svg" alt="" width={36} height={36} />
          <span>Uptide</span>
        </div>
        <h1 id="signin-title">Sign in to the console</h1>
        <p className="muted">Use an admin API token. It is kept in this browser tab only, until you sign out or close the tab.</p>
        <label htmlFor="token">API token</label>
        <input
          id="token"
          ref={input}
          type="password"
          autoComplete="off"
          spellCheck={false}
          value={token}
          onChange={(e) => setToken(e.target.value)}
          aria-invalid={error ? true : undefined}
          aria-describedby={error ? 'signin-error token-hint' : 'token-hint'}
        />
        {error ? (
          <p className="field-error" id="signin-error" role="alert">
            {error}
          </p>
        ) : null}
        <button type="submit" disabled={busy}>
          {busy ? 'Signing in…' : 'Sign in'}
        </button>
        <p className="hint" id="token-hint">
          The first token is written to <code>&lt;data dir&gt;/admin-token</code> when the server starts for the first time: <code>./data/admin-token</code>{' '}
          with <code>npm start</code> (or <code>$UPTIDE_DATA_DIR/admin-token</code>). Print it with <code>cat ./data/admin-token</code>.
        </p>
      </form>
    </main>
  );
}
