//! Models run in-process on the CPU with candle.

pub mod chat;
pub mod embed;
pub mod guided;
pub mod template;

pub use chat::{Generated, LocalChat, LocalChatOptions};
pub use embed::{BertEmbedder, LocalEmbedder};
