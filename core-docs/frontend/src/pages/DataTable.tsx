import datatable from '../../../snippets/datatable.rs?raw'
import invalid from '../../../snippets/json/datatable-invalid.json?raw'
import page from '../../../snippets/json/datatable-page.json?raw'
import requests from '../../../snippets/shell/requests.sh?raw'
import { Code, Snippet } from '../components/Code'
import { Callout, sectionsOf } from '../components/Section'
import { hrefFor } from '../lib/router'
import { definePage } from './define'

const headings = {
  define: 'Defining a list',
  mount: 'Registering and mounting it',
  parameters: 'Query parameters',
  response: 'The response',
  errors: 'Invalid queries',
  joins: 'Joins and computed columns',
  handler: 'Inside your own handler',
  performance: 'Counting and performance',
}
const Section = sectionsOf(headings)

function DataTablePage() {
  return (
    <>
      <Section id="define">
        <p>
          <code>core_web::datatable::DataTable</code> turns a declaration into a list endpoint with pagination, sorting,
          filters and free-text search, on PostgreSQL or SQLite. Each column says its type and what a request may do
          with it; everything else is refused.
        </p>
        <Snippet source={datatable} region="define" />
        <p>
          Column types: <code>text</code>, <code>integer</code>, <code>float</code>, <code>boolean</code> and{' '}
          <code>timestamp</code>. Filters: <code>Filter::Eq</code>, <code>Filter::Like</code> (case-insensitive
          substring) and <code>Filter::Range</code>.
        </p>
      </Section>

      <Section id="mount">
        <p>
          <code>into_route(db)</code> checks the definition and returns a <code>GET</code> route for{' '}
          <code>Router::route</code>. An invalid definition (no columns, a default sort on an unknown column) panics
          when the router is built, like a bad route path, so it never reaches production unnoticed.
        </p>
        <Snippet source={datatable} region="mount" />
      </Section>

      <Section id="parameters">
        <table>
          <thead>
            <tr>
              <th>Parameter</th>
              <th>Meaning</th>
            </tr>
          </thead>
          <tbody>
            <tr><td><code>page=3</code></td><td>1-based page number (default 1)</td></tr>
            <tr><td><code>per_page=50</code></td><td>rows per page (default from <code>per_page</code>), capped at <code>max_per_page</code></td></tr>
            <tr><td><code>sort=-views,title</code></td><td>sortable columns; a leading <code>-</code> sorts descending; the default sort otherwise</td></tr>
            <tr><td><code>filter[status]=published</code></td><td>equality (<code>filter[status][eq]=…</code> is the same)</td></tr>
            <tr><td><code>filter[title][like]=rust</code></td><td>case-insensitive substring; <code>%</code> and <code>_</code> match themselves</td></tr>
            <tr><td><code>filter[published_at][gte]=2024-06-01</code></td><td>range: <code>gte</code>, <code>gt</code>, <code>lte</code>, <code>lt</code>; combine two for a closed range</td></tr>
            <tr><td><code>q=rust</code></td><td>case-insensitive substring over every searchable column</td></tr>
          </tbody>
        </table>
        <p>
          Values are parsed as the column's type; a date such as <code>2024-05-31</code> means the whole day, so{' '}
          <code>[lte]=2024-05-31</code> includes all of 31 May. Empty values count as not given, as HTML forms send them.
        </p>
      </Section>

      <Section id="response">
        <Snippet source={requests} region="datatable-page" language="bash" />
        <Code language="json" title="200 OK" code={page} />
        <p>
          Rows are JSON objects with every column, timestamps as RFC 3339 text; <code>meta</code> has the page, the page
          size, the total of matching rows and the last page.
        </p>
      </Section>

      <Section id="errors">
        <p>
          A parameter the definition does not allow (an unknown column, a column that cannot be sorted or filtered that
          way, a value that does not parse) is a 422 with the parameter as the field; malformed encoding is a 400.
        </p>
        <Code language="json" title="GET /api/v1/articles?sort=status → 422" code={invalid} />
        <Callout kind="note">
          Every value from the request is a bound parameter, and column names, tables and operators in the SQL only ever
          come from the definition. <code>from_sql</code> and <code>Column::sql</code> take SQL verbatim: write them in
          code, never from input.
        </Callout>
      </Section>

      <Section id="joins">
        <Snippet source={datatable} region="join" />
      </Section>

      <Section id="handler">
        <p>
          Build the table once (<code>build()</code>), keep it in the state, and call <code>parse</code> and{' '}
          <code>fetch</code> (or <code>respond</code>) from a handler when the route needs more than the listing:
          authorization, extra fields, auditing.
        </p>
        <Snippet source={datatable} region="handler" />
      </Section>

      <Section id="performance">
        <p>
          The total is exact and fetched concurrently with the page. By default it is a <code>COUNT(*)</code>, which on
          PostgreSQL reads the whole table: about 5 ms per 100,000 rows, more than the page itself. For large tables,
          track the row count and let requests without filters or search read it:
        </p>
        <Snippet source={datatable} region="tracked" />
        <p>
          <code>track_row_count</code> installs triggers that keep the count as rows are inserted, deleted or truncated
          (see <a href={hrefFor('database', 'row-counts')}>Database → Row counts</a>), so the total stays exact and costs a fraction
          of a millisecond: on 100,000 rows the first page answers in about 0.5 ms instead of 5–8 ms. Filtered totals
          are still counted. To skip those counts too, <code>cache_counts(Duration::from_secs(30))</code> keeps each
          total for a while (it may then lag behind writes by that long), and <code>forget_counts()</code> drops them
          after a write. Index the columns you sort and filter on.
        </p>
      </Section>
    </>
  )
}

export default definePage({
  title: 'DataTable',
  summary: 'A declarative list endpoint: define the columns once, mount it on a route, and get pagination, sorting, filters and search.',
  headings,
  component: DataTablePage,
})
