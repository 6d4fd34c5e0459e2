//! Platform features built on the infrastructure handles: ready-made pieces an app uses as they
//! are.

/// File attachments: upload rules, the [`Attachment`](attachments::Attachment) value a model
/// stores, and the multipart upload helper.
pub mod attachments;
