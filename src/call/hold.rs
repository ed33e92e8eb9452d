//! Hold: a leg that puts the conversation on hold stops being relayed and
//! the other side hears the hold prompt until it is resumed.

use tracing::info;

use super::event::CallEventKind;
use super::{CallId, MediaCommand, Output, Purpose, Switch};

impl Switch {
    /// Leg `id` put the bridged call on hold (or took it off): what it
    /// sends is no longer relayed to the other leg, which hears the hold
    /// prompt instead, until the call is resumed.
    pub(super) fn hold_changed(&mut self, id: CallId, hold: bool) {
        let Some(other) = self.bridged_to(id) else {
            return;
        };
        info!(call = %id, %other, hold, "call on hold");
        // Told in the caller's story, whichever side holds.
        let (caller, by_agent) = match self.calls.get(&id).map(|c| &c.purpose) {
            Some(Purpose::AgentLeg { caller, .. }) => (*caller, true),
            _ => (id, false),
        };
        if let Some(now) = self.last_now {
            self.emit(now, caller, CallEventKind::Held { by_agent, hold });
        }
        if self
            .calls
            .get(&caller)
            .is_some_and(|c| c.side().transfer.is_some())
        {
            // The transfer keeps both sides apart; its end decides.
            return;
        }
        self.out.push_back(Output::Media(MediaCommand::Relay {
            from: id,
            on: !hold,
        }));
        if hold {
            self.play_hold(other);
        } else {
            self.out
                .push_back(Output::Media(MediaCommand::Stop { call: other }));
        }
    }

    /// Whether the leg bridged with `id` holds the call.
    pub(super) fn held_by_other(&self, id: CallId) -> bool {
        self.bridged_to(id)
            .is_some_and(|o| self.calls.get(&o).is_some_and(|c| c.on_hold))
    }

    /// The hold prompt, in the leg's language (the caller's from the menu).
    pub(super) fn play_hold(&mut self, id: CallId) {
        let lang = self
            .calls
            .get(&id)
            .and_then(|c| c.side().ivr.as_ref())
            .map(|s| s.language().to_string())
            .unwrap_or_else(|| self.cfg.language.clone());
        // Looped by the media edge until the call is resumed.
        self.out.push_back(Output::Media(MediaCommand::Loop {
            call: id,
            first: Vec::new(),
            prompts: vec![format!("hold_{lang}")],
        }));
    }

    pub(super) fn play(&mut self, id: CallId, prompt: &str) {
        let prompts = vec![format!("{prompt}_{}", self.cfg.language)];
        self.out
            .push_back(Output::Media(MediaCommand::Play { call: id, prompts }));
    }
}
