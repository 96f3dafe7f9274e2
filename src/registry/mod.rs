//! Registry client: references, auth, pull and push.
