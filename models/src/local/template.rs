//! Chat templates, as the model's authors wrote them.
//!
//! The template comes from the GGUF metadata (`tokenizer.chat_template`) or
//! from a `chat_template.jinja` beside the weights; no prompt format is
//! hard-coded here. Templates are Jinja written for Python's
//! transformers, so they are rendered with minijinja and its Python
//! compatibility methods (`.strip()`, `.startswith()`, ...).

use brain::backends::{Message, Role, ToolDefinition};
use minijinja::{Environment, Error, ErrorKind, Value, context};
use serde_json::json;

/// A compiled chat template with the tokens it refers to.
pub struct ChatTemplate {
    env: Environment<'static>,
    source: String,
    pub bos_token: String,
    pub eos_token: String,
}

impl std::fmt::Debug for ChatTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatTemplate")
            .field("bytes", &self.source.len())
            .finish()
    }
}

fn raise_exception(message: String) -> Result<Value, Error> {
    Err(Error::new(ErrorKind::InvalidOperation, message))
}

impl ChatTemplate {
    pub fn new(source: &str, bos_token: &str, eos_token: &str) -> Result<ChatTemplate, String> {
        let mut env = Environment::new();
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", raise_exception);
        // Templates are trusted files, but keep whitespace exactly as written:
        // the model was trained on the text they produce.
        env.set_keep_trailing_newline(true);
        env.add_template_owned("chat", source.to_owned())
            .map_err(|e| format!("the chat template does not compile: {e}"))?;
        Ok(ChatTemplate {
            env,
            source: source.to_owned(),
            bos_token: bos_token.to_owned(),
            eos_token: eos_token.to_owned(),
        })
    }

    /// Whether the template renders tool definitions itself.
    pub fn supports_tools(&self) -> bool {
        self.source.contains("tools")
    }

    /// The prompt for `messages`, ending where the assistant's turn begins.
    pub fn render(&self, messages: &[Message], tools: &[ToolDefinition]) -> Result<String, String> {
        let messages: Vec<serde_json::Value> = messages.iter().map(message_value).collect();
        let tools: Option<Vec<serde_json::Value>> = (!tools.is_empty()).then(|| {
            tools
                .iter()
                .map(|t| {
                    json!({"type": "function", "function": {"name": t.name,
                        "description": t.description, "parameters": t.parameters}})
                })
                .collect()
        });
        let template = self
            .env
            .get_template("chat")
            .map_err(|e| format!("chat template: {e}"))?;
        template
            .render(context! {
                messages => Value::from_serialize(&messages),
                tools => Value::from_serialize(&tools),
                add_generation_prompt => true,
                bos_token => self.bos_token.as_str(),
                eos_token => self.eos_token.as_str(),
            })
            .map_err(|e| format!("rendering the chat template: {e}"))
    }
}

fn message_value(m: &Message) -> serde_json::Value {
    let role = match m.role {
        Role::System => "system",
        Role::User => "user",
        Role::Assistant => "assistant",
        Role::Tool => "tool",
    };
    let mut v = json!({"role": role, "content": m.content});
    if !m.tool_calls.is_empty() {
        v["tool_calls"] = m
            .tool_calls
            .iter()
            .map(|c| {
                json!({"id": c.id, "type": "function",
                       "function": {"name": c.name, "arguments": c.arguments}})
            })
            .collect();
    }
    if let Some(id) = &m.tool_call_id {
        v["tool_call_id"] = json!(id);
    }
    v
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// A ChatML template of the shape SmolLM2 and Qwen ship.
    const CHATML: &str = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are helpful.<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

    #[test]
    fn renders_chatml_with_the_generation_prompt() {
        let t = ChatTemplate::new(CHATML, "", "<|im_end|>").unwrap();
        let out = t
            .render(
                &[Message::new(Role::User, "why is the pod OOMKilled?")],
                &[],
            )
            .unwrap();
        assert_eq!(
            out,
            "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nwhy is the pod OOMKilled?<|im_end|>\n<|im_start|>assistant\n"
        );
        assert!(!t.supports_tools());
    }

    #[test]
    fn python_string_methods_and_raise_exception_work() {
        let t = ChatTemplate::new(
            "{% if messages[0].role == 'tool' %}{{ raise_exception('no tool first') }}{% endif %}{{ messages[0].content.strip() }}",
            "",
            "",
        )
        .unwrap();
        assert_eq!(
            t.render(&[Message::new(Role::User, "  hi  ")], &[])
                .unwrap(),
            "hi"
        );
        let e = t.render(&[Message::new(Role::Tool, "x")], &[]).unwrap_err();
        assert!(e.contains("no tool first"), "{e}");
    }
}
