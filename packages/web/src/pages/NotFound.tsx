import { PageTitle } from '../components';
import { Link } from '../router';

export function NotFound() {
  return (
    <>
      <PageTitle title="Page not found" />
      <p>
        The console has no page at this address. Go to the <Link to="/">overview</Link>, or see the admin API at <a href="/docs">/docs</a>.
      </p>
    </>
  );
}
