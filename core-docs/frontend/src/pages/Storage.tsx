import coverUploaded from '../../../snippets/json/cover-uploaded.json?raw'
import requests from '../../../snippets/shell/requests.sh?raw'
import storage from '../../../snippets/storage.rs?raw'
import { Code, Snippet } from '../components/Code'
import { sectionsOf } from '../components/Section'
import { hrefFor } from '../lib/router'
import { definePage } from './define'

const headings = {
  drivers: 'Drivers and setup',
  basics: 'put, get, delete, links',
  'upload-flow': 'End to end: multipart → storage → model row',
  rules: 'Upload rules',
  errors: 'Upload errors',
  replacing: 'Replacing and deleting files',
}
const Section = sectionsOf(headings)

function Storage() {
  return (
    <>
      <Section id="drivers">
        <p>
          <code>core_db::Storage</code> is one trait over two drivers that behave the same: local files
          under <code>STORAGE_ROOT</code> (the default, nothing to install) and S3 or any S3-compatible server. Hold an{' '}
          <code>Arc&lt;dyn Storage&gt;</code> in your state and build it from the settings:
        </p>
        <Snippet source={storage} region="setup" />
        <table>
          <thead>
            <tr>
              <th>Setting</th>
              <th>Meaning</th>
            </tr>
          </thead>
          <tbody>
            <tr><td><code>STORAGE_DRIVER</code></td><td><code>local</code> (default) or <code>s3</code></td></tr>
            <tr><td><code>STORAGE_ROOT</code></td><td>directory of the local driver (default <code>data/storage</code>); writes are atomic</td></tr>
            <tr><td><code>STORAGE_PUBLIC_URL</code></td><td>base URL under which objects are served (default <code>/storage</code>)</td></tr>
            <tr><td><code>STORAGE_PUBLIC_PREFIXES</code></td><td>key prefixes the app's <code>/storage</code> route serves without a signature (none by default); every other key needs a <code>presign_get</code> link</td></tr>
            <tr><td><code>S3_BUCKET</code>, <code>S3_REGION</code></td><td>the bucket (required for S3) and its region</td></tr>
            <tr><td><code>S3_ENDPOINT</code>, <code>S3_FORCE_PATH_STYLE</code></td><td>for S3-compatible servers, which mostly need path-style addressing</td></tr>
            <tr><td><code>S3_ACCESS_KEY_ID</code>, <code>S3_SECRET_ACCESS_KEY</code></td><td>credentials; when unset, the usual AWS environment variables</td></tr>
          </tbody>
        </table>
      </Section>

      <Section id="basics">
        <Snippet source={storage} region="basics" />
        <ul>
          <li>
            Keys are <code>/</code>-separated relative paths. Empty segments, <code>.</code> and <code>..</code>, segments
            over 255 bytes, absolute paths, backslashes and control characters are refused before anything reaches a
            driver.
          </li>
          <li>
            <code>put_stream</code> and <code>put_reader</code> store a body as it arrives (on S3 as a multipart upload),
            so a large file is never held in memory; <code>get_stream</code> reads one back in chunks.
          </li>
          <li>
            <code>url</code> is for public objects; <code>presign_get</code> (and <code>presign_put</code>, for uploads
            straight from a browser) hand out links that expire. A route serving local files checks them with{' '}
            <code>verify_signed_url</code> (expired, forged or tampered links fail); S3 links are checked by the bucket,
            so the app redirects to them and serves active types (HTML, SVG…) only as sandboxed downloads.
          </li>
        </ul>
      </Section>

      <Section id="upload-flow">
        <p>
          The whole path of an upload: the client sends a multipart form, the handler checks the file against rules
          while it streams into storage, and the model's row records where it went. If anything fails after the file was
          stored (the row update, or the client going away), the file is deleted again.
        </p>
        <Snippet source={storage} region="upload" />
        <Snippet source={requests} region="upload-cover" language="bash" />
        <Code language="json" title="201 Created" code={coverUploaded.trim()} />
        <p>
          The <code>Attachment</code> is what the model keeps, as JSON in a column: its key, public URL, detected content
          type, size, image dimensions and the client's file name (for display only, never used in the key).
        </p>
      </Section>

      <Section id="rules">
        <p>
          <code>AttachmentRules::images()</code> allows PNG, JPEG, GIF and WebP; <code>documents()</code> PDFs;{' '}
          <code>new().allow("image/*").allow("text/plain")</code> builds your own list (10 MiB at most unless you say
          otherwise). <code>max_size</code>,{' '}
          <code>min_dimensions</code> and <code>max_dimensions</code> add limits. The content type is read from the
          file's bytes, whatever its name or declared type says, and the size limit is enforced while the file streams:
          past it the upload stops and nothing is stored.
        </p>
      </Section>

      <Section id="errors">
        <table>
          <thead>
            <tr>
              <th>
                <code>UploadError</code>
              </th>
              <th>Status</th>
              <th>
                <code>error_code</code>
              </th>
            </tr>
          </thead>
          <tbody>
            <tr><td><code>MissingFile</code></td><td>400</td><td><code>BAD_REQUEST</code></td></tr>
            <tr><td><code>Multipart</code></td><td>400 (413 past the body limit)</td><td><code>BAD_REQUEST</code> / <code>PAYLOAD_TOO_LARGE</code></td></tr>
            <tr><td><code>TooLarge</code></td><td>413</td><td><code>PAYLOAD_TOO_LARGE</code></td></tr>
            <tr><td><code>DisallowedType</code>, <code>InvalidImage</code></td><td>422</td><td><code>VALIDATION_ERROR</code></td></tr>
            <tr><td><code>Storage</code>, <code>Other</code></td><td>500</td><td><code>INTERNAL_ERROR</code></td></tr>
          </tbody>
        </table>
        <p>
          <code>UploadError</code> itself names no HTTP status: it is a plain error of <code>core_db</code>. In a handler
          returning <code>ApiResult</code>, <code>?</code> turns it into an <code>AppError</code> with the status above,
          and reports 422s under the form field, like <a href={hrefFor('validation')}>validation</a> errors.
        </p>
        <p>
          The whole request body is also bounded by <code>BODY_LIMIT_BYTES</code> (2 MiB by default): raise it for
          routes that accept large files.
        </p>
      </Section>

      <Section id="replacing">
        <Snippet source={storage} region="replace" />
        <p>
          Store the new file and update the row first, then delete the old file: a failure in between leaves an unused
          file, never a row pointing at nothing.
        </p>
      </Section>
    </>
  )
}

export default definePage({
  title: 'Storage and attachments',
  summary: 'Local files or S3 behind one Storage trait, and uploads checked by their bytes, streamed to storage and recorded on the model.',
  headings,
  component: Storage,
})
