/** The console's shell: sign-in gate, header and navigation, and the page for the current path. */
import { useCallback, useEffect, useState, type ReactNode } from 'react';
import { api, ApiError, setUnauthorizedHandler, tokenStore, type WhoAmI } from './api';
import { Link, matchRoute, navigate, useLocation } from './router';
import { SignIn } from './pages/SignIn';
import { Overview } from './pages/Overview';
import { Devices } from './pages/Devices';
import { DevicePage } from './pages/Device';
import { Images } from './pages/Images';
import { Updates } from './pages/Updates';
import { NewUpdate } from './pages/NewUpdate';
import { UpdatePage } from './pages/Update';
import { Groups } from './pages/Groups';
import { GroupPage } from './pages/Group';
import { NotFound } from './pages/NotFound';
import { Loading } from './components';

type Render = (params: Record<string, string>) => ReactNode;

const ROUTES: Array<[string, Render]> = [
  ['/', () => <Overview />],
  ['/devices', () => <Devices />],
  ['/devices/:id', (p) => <DevicePage id={p['id'] as string} />],
  ['/images', () => <Images />],
  ['/updates', () => <Updates />],
  ['/updates/new', () => <NewUpdate />],
  ['/updates/:id', (p) => <UpdatePage id={p['id'] as string} />],
  ['/groups', () => <Groups />],
  ['/groups/:id', (p) => <GroupPage id={p['id'] as string} />],
];

const NAV: Array<[string, string]> = [
  ['/', 'Overview'],
  ['/devices', 'Devices'],
  ['/images', 'Images'],
  ['/updates', 'Updates'],
  ['/groups', 'Groups'],
];

function route(path: string): ReactNode {
  for (const [pattern, render] of ROUTES) {
    const params = matchRoute(pattern, path);
    if (params) return render(params);
  }
  return <NotFound />;
}

function isCurrent(item: string, path: string): boolean {
  return item === '/' ? path === '/' : path === item || path.startsWith(`${item}/`);
}

export function App() {
  const { path } = useLocation();
  const [who, setWho] = useState<WhoAmI | undefined>();
  const [checking, setChecking] = useState(() => tokenStore.get() !== null);
  const [signInMessage, setSignInMessage] = useState<string | undefined>();

  const signOut = useCallback((message?: string) => {
    tokenStore.clear();
    setWho(undefined);
    setSignInMessage(message);
  }, []);

  useEffect(() => {
    setUnauthorizedHandler((message) => signOut(`The server refused the token: ${message}. Sign in again.`));
  }, [signOut]);

  // A token kept from earlier in this tab: check that it still works.
  useEffect(() => {
    if (!checking) return;
    api.whoami().then(
      (w) => {
        setWho(w);
        setChecking(false);
      },
      (err: unknown) => {
        // A refused token is reported by the 401 handler; say so when the server is not there at all.
        if (err instanceof ApiError && err.status === 0) setSignInMessage(err.message);
        setChecking(false);
      },
    );
  }, [checking]);

  if (checking) return <Loading what="Connecting" />;
  if (!who)
    return (
      <SignIn
        message={signInMessage}
        onSignedIn={(w, token) => {
          tokenStore.set(token);
          setSignInMessage(undefined);
          setWho(w);
        }}
      />
    );

  return (
    <>
      <a className="skip" href="#main">
        Skip to content
      </a>
      <header className="top">
        <div className="top-inner">
          <Link to="/" className="brand" aria-label="Uptide overview">
            <img src="/favicon.svg" alt="" width={24} height={24} />
            <span>Uptide</span>
          </Link>
          <nav aria-label="Main">
            <ul>
              {NAV.map(([to, label]) => (
                <li key={to}>
                  <Link to={to} aria-current={isCurrent(to, path) ? 'page' : undefined}>
                    {label}
                  </Link>
                </li>
              ))}
              <li>
                <a href="/docs" target="_blank" rel="noreferrer">
                  API docs
                </a>
              </li>
            </ul>
          </nav>
          <div className="who">
            <span title={who.system ? 'a system token: it may also manage namespaces' : undefined}>
              namespace <strong>{who.namespace}</strong>
            </span>
            <button
              type="button"
              className="secondary small"
              onClick={() => {
                signOut();
                navigate('/');
              }}
            >
              Sign out
            </button>
          </div>
        </div>
      </header>
      <main id="main">{route(path)}</main>
    </>
  );
}
