import { useState } from 'react';
import { api, type UpdateStatus } from '../api';
import { Ago, CountsBar, Empty, ErrorBox, Loading, PageTitle, Pager } from '../components';
import { updateImages } from '../format';
import { useLoad } from '../hooks';
import { Link } from '../router';

const PAGE = 20;

export function Updates() {
  const [offset, setOffset] = useState(0);
  // Each row's progress comes from the update's status: one request per row of the page.
  const list = useLoad(
    `updates|${offset}`,
    async () => {
      const page = await api.updates({ offset, limit: PAGE });
      const statuses = await Promise.all(page.values.map((u) => api.update(u.id)));
      return { total: page.total, rows: statuses };
    },
    10_000,
  );

  return (
    <>
      <PageTitle
        title="Updates"
        actions={
          <Link to="/updates/new" className="button">
            New update
          </Link>
        }
      >
        Images sent to devices through the Director, newest first.
      </PageTitle>
      <ErrorBox error={list.error} title="Could not load updates." />
      {list.data === undefined ? (
        list.loading ? (
          <Loading />
        ) : null
      ) : list.data.total === 0 ? (
        <Empty>
          No updates yet. <Link to="/updates/new">Launch the first one</Link>.
        </Empty>
      ) : (
        <div className="card flush">
          <table>
            <thead>
              <tr>
                <th scope="col">Update</th>
                <th scope="col">Image</th>
                <th scope="col">Created</th>
                <th scope="col">Devices</th>
              </tr>
            </thead>
            <tbody>
              {list.data.rows.map((u: UpdateStatus) => (
                <tr key={u.id}>
                  <td>
                    <Link to={`/updates/${u.id}`}>{u.name ?? u.id}</Link>
                  </td>
                  <td className="mono">{updateImages(u.targets).join(', ')}</td>
                  <td>
                    <Ago iso={u.createdAt} />
                  </td>
                  <td className="wide-cell">
                    <CountsBar counts={u.counts} />
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
          <Pager label="Updates" offset={offset} limit={PAGE} total={list.data.total} onChange={setOffset} />
        </div>
      )}
    </>
  );
}
