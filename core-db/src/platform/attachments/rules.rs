//! [`AttachmentRules`]: what an upload may be.

use super::sniff;

/// What an upload may be: its content types, its size and, for images, its dimensions.
///
/// Content types are matched against the type read from the file's bytes
/// ([`sniff`]), never only the client's header. A pattern is a full type
/// (`image/png`), a family (`image/*`) or `*/*`.
///
/// ```
/// use core_db::attachments::AttachmentRules;
///
/// let avatar = AttachmentRules::images()
///     .max_size(2 * 1024 * 1024)
///     .min_dimensions(64, 64)
///     .max_dimensions(4096, 4096);
/// assert!(avatar.allows("image/webp"));
/// assert!(!avatar.allows("application/pdf"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct AttachmentRules {
    allowed: Vec<String>,
    max_size: u64,
    min_dimensions: Option<(u32, u32)>,
    max_dimensions: Option<(u32, u32)>,
}

impl Default for AttachmentRules {
    /// No type allowed yet, 10 MiB at most, no dimension limits.
    fn default() -> Self {
        AttachmentRules::new()
    }
}

impl AttachmentRules {
    /// The default maximum size: 10 MiB.
    pub const DEFAULT_MAX_SIZE: u64 = 10 * 1024 * 1024;

    /// Rules that allow no type yet (add some with [`allow`](Self::allow)), 10 MiB at most.
    pub fn new() -> Self {
        AttachmentRules {
            allowed: Vec::new(),
            max_size: Self::DEFAULT_MAX_SIZE,
            min_dimensions: None,
            max_dimensions: None,
        }
    }

    /// PNG, JPEG, GIF and WebP images.
    pub fn images() -> Self {
        AttachmentRules::new()
            .allow(sniff::PNG)
            .allow(sniff::JPEG)
            .allow(sniff::GIF)
            .allow(sniff::WEBP)
    }

    /// PDF documents.
    pub fn documents() -> Self {
        AttachmentRules::new().allow(sniff::PDF)
    }

    /// Also allows `pattern`: a type (`image/png`), a family (`image/*`) or `*/*`.
    pub fn allow(mut self, pattern: impl Into<String>) -> Self {
        let pattern = pattern.into().trim().to_ascii_lowercase();
        if !self.allowed.contains(&pattern) {
            self.allowed.push(pattern);
        }
        self
    }

    /// Allows at most `bytes` bytes; a larger upload is refused while it streams.
    pub fn max_size(mut self, bytes: u64) -> Self {
        self.max_size = bytes;
        self
    }

    /// Requires images to be at least `width` × `height` pixels.
    pub fn min_dimensions(mut self, width: u32, height: u32) -> Self {
        self.min_dimensions = Some((width, height));
        self
    }

    /// Requires images to be at most `width` × `height` pixels.
    pub fn max_dimensions(mut self, width: u32, height: u32) -> Self {
        self.max_dimensions = Some((width, height));
        self
    }

    /// Whether `content_type` matches one of the allowed patterns.
    pub fn allows(&self, content_type: &str) -> bool {
        let content_type = content_type.to_ascii_lowercase();
        let family = content_type.split('/').next().unwrap_or("");
        self.allowed.iter().any(|pattern| {
            pattern == "*/*"
                || *pattern == content_type
                || pattern.strip_suffix("/*").is_some_and(|f| f == family)
        })
    }

    /// The allowed patterns, in the order they were added.
    pub fn allowed_types(&self) -> &[String] {
        &self.allowed
    }

    /// The maximum size in bytes.
    pub fn max_bytes(&self) -> u64 {
        self.max_size
    }

    /// The minimum image dimensions, if any.
    pub fn min_image_dimensions(&self) -> Option<(u32, u32)> {
        self.min_dimensions
    }

    /// The maximum image dimensions, if any.
    pub fn max_image_dimensions(&self) -> Option<(u32, u32)> {
        self.max_dimensions
    }

    /// Whether these rules limit image dimensions.
    pub fn checks_dimensions(&self) -> bool {
        self.min_dimensions.is_some() || self.max_dimensions.is_some()
    }

    /// Why an image of `width` × `height` breaks the dimension rules, or `None` if it does not.
    pub fn dimension_problem(&self, width: u32, height: u32) -> Option<String> {
        if let Some((min_w, min_h)) = self.min_dimensions
            && (width < min_w || height < min_h)
        {
            return Some(format!(
                "the image is {width}×{height} pixels; at least {min_w}×{min_h} is required"
            ));
        }
        if let Some((max_w, max_h)) = self.max_dimensions
            && (width > max_w || height > max_h)
        {
            return Some(format!(
                "the image is {width}×{height} pixels; at most {max_w}×{max_h} is allowed"
            ));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_types_families_and_anything() {
        let rules = AttachmentRules::new()
            .allow("image/*")
            .allow("Application/PDF");
        assert!(rules.allows("image/png"));
        assert!(rules.allows("IMAGE/GIF"));
        assert!(rules.allows("application/pdf"));
        assert!(!rules.allows("application/zip"));
        assert!(!rules.allows("imagex/png"));
        assert!(AttachmentRules::new().allow("*/*").allows("text/plain"));
        assert!(!AttachmentRules::new().allows("text/plain"));
    }

    #[test]
    fn checks_dimensions() {
        let rules = AttachmentRules::images()
            .min_dimensions(10, 10)
            .max_dimensions(100, 50);
        assert_eq!(rules.dimension_problem(10, 10), None);
        assert_eq!(rules.dimension_problem(100, 50), None);
        assert!(rules.dimension_problem(9, 10).unwrap().contains("at least"));
        assert!(
            rules
                .dimension_problem(100, 51)
                .unwrap()
                .contains("at most")
        );
        assert!(!AttachmentRules::images().checks_dimensions());
    }
}
