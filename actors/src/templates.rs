//! Message templates: the Pinpoint template operations over the meta group.
//!
//! A version's body is stored as the create/update request JSON (tags
//! removed); a `Get*Template` response is that body plus the template's
//! metadata, passed through the typed response shape of its kind so only
//! the model's members come out. Templates are account-wide, as in
//! Pinpoint: they are not owned by an app.

use std::collections::BTreeMap;

use herald_model::template::{
    self as tpl, EmailTemplateRequest, InAppTemplateRequest, PushNotificationTemplateRequest,
    SMSTemplateRequest, TemplateResponse, TemplateType, TemplateVersionResponse,
    TemplateVersionsResponse, TemplatesResponse, VoiceTemplateRequest,
};
use herald_model::{ids, validate};
use herald_storage::{
    CmdResult, Command, KvEngine, TemplateHead, TemplateVersionRecord, TemplateWrite, META_GROUP,
};
use serde_json::Value;

use crate::service::{Herald, Result, ServiceError, PAGE_SIZE_DEFAULT, PAGE_SIZE_MAX};

fn not_found(kind: TemplateType, name: &str) -> ServiceError {
    ServiceError::NotFound(format!(
        "template {name} of type {} not found",
        kind.as_str()
    ))
}

fn parse<T: serde::de::DeserializeOwned>(body: &Value) -> Result<T> {
    serde_json::from_value(body.clone())
        .map_err(|e| ServiceError::BadRequest(format!("invalid request body: {e}")))
}

/// Checks a create/update body of its kind.
fn check_body(
    kind: TemplateType,
    body: &Value,
    limits: &herald_model::limits::Limits,
) -> Result<()> {
    if !body.is_object() {
        return Err(ServiceError::BadRequest(
            "the request body must be a JSON object".into(),
        ));
    }
    match kind {
        TemplateType::Email => {
            tpl::email_template_request(&parse::<EmailTemplateRequest>(body)?, limits)?
        }
        TemplateType::Sms => {
            tpl::sms_template_request(&parse::<SMSTemplateRequest>(body)?, limits)?
        }
        TemplateType::Push => {
            tpl::push_template_request(&parse::<PushNotificationTemplateRequest>(body)?, limits)?
        }
        TemplateType::Voice => {
            tpl::voice_template_request(&parse::<VoiceTemplateRequest>(body)?, limits)?
        }
        TemplateType::InApp => {
            tpl::in_app_template_request(&parse::<InAppTemplateRequest>(body)?, limits)?
        }
    }
    Ok(())
}

fn version_param(v: Option<&str>) -> Result<Option<u32>> {
    match v {
        None => Ok(None),
        Some(s) => {
            tpl::template_version("version", s)?;
            s.parse::<u32>().map(Some).map_err(|_| {
                ServiceError::BadRequest("version: must be a positive whole number".into())
            })
        }
    }
}

/// The response body of `Get*Template` for one version.
fn response(kind: TemplateType, head: &TemplateHead, rec: &TemplateVersionRecord) -> Result<Value> {
    let mut obj = match &rec.body {
        Value::Object(m) => m.clone(),
        _ => serde_json::Map::new(),
    };
    obj.insert("Arn".into(), Value::String(head.arn.clone()));
    obj.insert(
        "CreationDate".into(),
        Value::String(head.creation_date.clone()),
    );
    obj.insert(
        "LastModifiedDate".into(),
        Value::String(rec.last_modified_date.clone()),
    );
    obj.insert("TemplateName".into(), Value::String(head.name.clone()));
    obj.insert("TemplateType".into(), Value::String(kind.as_str().into()));
    obj.insert("Version".into(), Value::String(rec.version.to_string()));
    obj.insert(
        "tags".into(),
        serde_json::to_value(&head.tags).unwrap_or_default(),
    );
    let v = Value::Object(obj);
    // Through the typed shape: only the model's members, in its types.
    let typed = match kind {
        TemplateType::Email => serde_json::to_value(parse::<tpl::EmailTemplateResponse>(&v)?),
        TemplateType::Sms => serde_json::to_value(parse::<tpl::SMSTemplateResponse>(&v)?),
        TemplateType::Push => {
            serde_json::to_value(parse::<tpl::PushNotificationTemplateResponse>(&v)?)
        }
        TemplateType::Voice => serde_json::to_value(parse::<tpl::VoiceTemplateResponse>(&v)?),
        TemplateType::InApp => serde_json::to_value(parse::<tpl::InAppTemplateResponse>(&v)?),
    };
    typed.map_err(|e| ServiceError::Internal(e.to_string()))
}

fn str_member(body: &Value, name: &str) -> Option<String> {
    body.get(name).and_then(Value::as_str).map(str::to_owned)
}

impl<E: KvEngine> Herald<E> {
    /// `Create*Template`: answers the new template's ARN.
    pub async fn create_template(
        &self,
        kind: TemplateType,
        name: &str,
        region: &str,
        mut body: Value,
    ) -> Result<String> {
        tpl::template_name(name)?;
        check_body(kind, &body, &self.cfg.limits)?;
        let tags: BTreeMap<String, String> =
            match body.as_object_mut().and_then(|o| o.remove("tags")) {
                Some(t) => serde_json::from_value(t)
                    .map_err(|e| ServiceError::BadRequest(format!("tags: {e}")))?,
                None => BTreeMap::new(),
            };
        validate::tags(&tags, &self.cfg.limits)?;
        self.host.read_barrier(META_GROUP).await?;
        if self.host.reader().templates()?.len() >= tpl::TEMPLATES_MAX {
            return Err(ServiceError::BadRequest(format!(
                "an account may have at most {} templates",
                tpl::TEMPLATES_MAX
            )));
        }
        let arn = ids::resource_arn(
            region,
            &self.cfg.account,
            &format!("templates/{name}/{}", kind.as_str()),
        );
        let cmd = Command::PutTemplate {
            kind: kind.as_str().into(),
            name: name.into(),
            write: TemplateWrite::Create,
            body,
            arn: arn.clone(),
            tags,
            now_iso: self.now_iso(),
        };
        match self.host.propose(META_GROUP, cmd).await? {
            CmdResult::Template(Some(_)) => Ok(arn),
            CmdResult::Rejected(why) => Err(ServiceError::BadRequest(why)),
            other => Err(ServiceError::Internal(format!(
                "unexpected result {other:?}"
            ))),
        }
    }

    /// `Update*Template` with its `create-new-version` and `version` query
    /// parameters.
    pub async fn update_template(
        &self,
        kind: TemplateType,
        name: &str,
        mut body: Value,
        create_new_version: Option<&str>,
        version: Option<&str>,
    ) -> Result<()> {
        tpl::template_name(name)?;
        check_body(kind, &body, &self.cfg.limits)?;
        if let Some(o) = body.as_object_mut() {
            // Tags are managed with TagResource once the template exists.
            o.remove("tags");
        }
        let new_version = match create_new_version {
            None | Some("false") => false,
            Some("true") => true,
            Some(other) => {
                return Err(ServiceError::BadRequest(format!(
                    "create-new-version must be true or false, not {other:?}"
                )))
            }
        };
        let version = version_param(version)?;
        let write = match (new_version, version) {
            (true, Some(_)) => {
                return Err(ServiceError::BadRequest(
                    "give either create-new-version=true or version, not both".into(),
                ))
            }
            (true, None) => {
                self.host.read_barrier(META_GROUP).await?;
                let versions = self.host.reader().template_versions(kind.as_str(), name)?;
                if versions.len() >= tpl::TEMPLATE_VERSIONS_MAX {
                    return Err(ServiceError::BadRequest(format!(
                        "a template may have at most {} versions",
                        tpl::TEMPLATE_VERSIONS_MAX
                    )));
                }
                TemplateWrite::NewVersion
            }
            (false, v) => TemplateWrite::Overwrite(v),
        };
        let cmd = Command::PutTemplate {
            kind: kind.as_str().into(),
            name: name.into(),
            write,
            body,
            arn: String::new(),
            tags: BTreeMap::new(),
            now_iso: self.now_iso(),
        };
        match self.host.propose(META_GROUP, cmd).await? {
            CmdResult::Template(Some(_)) => Ok(()),
            CmdResult::Template(None) => Err(not_found(kind, name)),
            CmdResult::Rejected(why) => Err(ServiceError::NotFound(why)),
            other => Err(ServiceError::Internal(format!(
                "unexpected result {other:?}"
            ))),
        }
    }

    /// The stored head and version record (the active one when `version`
    /// is `None`).
    pub(crate) async fn template_record(
        &self,
        kind: TemplateType,
        name: &str,
        version: Option<u32>,
    ) -> Result<(TemplateHead, TemplateVersionRecord)> {
        self.host.read_barrier(META_GROUP).await?;
        let reader = self.host.reader();
        let head = reader
            .template(kind.as_str(), name)?
            .ok_or_else(|| not_found(kind, name))?;
        let v = version.unwrap_or(head.active);
        let rec = reader
            .template_version(kind.as_str(), name, v)?
            .ok_or_else(|| {
                ServiceError::NotFound(format!(
                    "template {name} of type {} has no version {v}",
                    kind.as_str()
                ))
            })?;
        Ok((head, rec))
    }

    /// `Get*Template`.
    pub async fn template(
        &self,
        kind: TemplateType,
        name: &str,
        version: Option<&str>,
    ) -> Result<Value> {
        let (head, rec) = self
            .template_record(kind, name, version_param(version)?)
            .await?;
        response(kind, &head, &rec)
    }

    /// `Delete*Template`: one version, or the whole template.
    pub async fn delete_template(
        &self,
        kind: TemplateType,
        name: &str,
        version: Option<&str>,
    ) -> Result<()> {
        let version = version_param(version)?;
        let cmd = Command::DeleteTemplate {
            kind: kind.as_str().into(),
            name: name.into(),
            version,
        };
        match self.host.propose(META_GROUP, cmd).await? {
            CmdResult::Template(Some(_)) => Ok(()),
            CmdResult::Template(None) => Err(not_found(kind, name)),
            CmdResult::Rejected(why) if why.contains("active version") => {
                Err(ServiceError::BadRequest(why))
            }
            CmdResult::Rejected(why) => Err(ServiceError::NotFound(why)),
            other => Err(ServiceError::Internal(format!(
                "unexpected result {other:?}"
            ))),
        }
    }

    /// `UpdateTemplateActiveVersion`.
    pub async fn set_template_active_version(
        &self,
        kind: TemplateType,
        name: &str,
        req: tpl::TemplateActiveVersionRequest,
    ) -> Result<()> {
        let version = if req.version.as_deref() == Some("latest") {
            self.host.read_barrier(META_GROUP).await?;
            self.host
                .reader()
                .template(kind.as_str(), name)?
                .ok_or_else(|| not_found(kind, name))?
                .latest
        } else {
            tpl::template_active_version_request(&req)?;
            version_param(req.version.as_deref())?.unwrap_or(1)
        };
        let cmd = Command::SetTemplateActiveVersion {
            kind: kind.as_str().into(),
            name: name.into(),
            version,
        };
        match self.host.propose(META_GROUP, cmd).await? {
            CmdResult::Template(Some(_)) => Ok(()),
            CmdResult::Template(None) => Err(not_found(kind, name)),
            CmdResult::Rejected(why) => Err(ServiceError::NotFound(why)),
            other => Err(ServiceError::Internal(format!(
                "unexpected result {other:?}"
            ))),
        }
    }

    /// `ListTemplates`: by name (then type); the token is the last
    /// `name/TYPE` of the previous page.
    pub async fn list_templates(
        &self,
        page_size: Option<&str>,
        token: Option<&str>,
        prefix: Option<&str>,
        template_type: Option<&str>,
    ) -> Result<TemplatesResponse> {
        let size = page_size_of(page_size)?;
        let kind = match template_type {
            None => None,
            Some(t) => Some(TemplateType::from_wire(t).ok_or_else(|| {
                ServiceError::BadRequest(format!(
                    "template-type must be one of EMAIL, SMS, PUSH, VOICE, INAPP, not {t:?}"
                ))
            })?),
        };
        self.host.read_barrier(META_GROUP).await?;
        let reader = self.host.reader();
        let mut heads: Vec<TemplateHead> = reader
            .templates()?
            .into_iter()
            .filter(|h| kind.is_none_or(|k| h.kind == k.as_str()))
            .filter(|h| prefix.is_none_or(|p| h.name.starts_with(p)))
            .collect();
        heads.sort_by(|a, b| (&a.name, &a.kind).cmp(&(&b.name, &b.kind)));
        // The token is `name/TYPE` of the last item; names never contain '/'.
        let start = match token {
            None => 0,
            Some(t) => {
                let (name, kind) = t
                    .rsplit_once('/')
                    .ok_or_else(|| ServiceError::BadRequest(format!("invalid next-token {t:?}")))?;
                heads
                    .iter()
                    .position(|h| (h.name.as_str(), h.kind.as_str()) > (name, kind))
                    .unwrap_or(heads.len())
            }
        };
        let page: Vec<&TemplateHead> = heads.iter().skip(start).take(size).collect();
        let next_token = (start + page.len() < heads.len())
            .then(|| page.last().map(|h| format!("{}/{}", h.name, h.kind)))
            .flatten();
        let mut item = Vec::with_capacity(page.len());
        for h in page {
            let rec = reader.template_version(&h.kind, &h.name, h.active)?;
            let body = rec.as_ref().map(|r| &r.body);
            item.push(TemplateResponse {
                arn: Some(h.arn.clone()),
                creation_date: h.creation_date.clone(),
                default_substitutions: body.and_then(|b| str_member(b, "DefaultSubstitutions")),
                last_modified_date: rec
                    .as_ref()
                    .map(|r| r.last_modified_date.clone())
                    .unwrap_or_default(),
                tags: Some(h.tags.clone()),
                template_description: body.and_then(|b| str_member(b, "TemplateDescription")),
                template_name: h.name.clone(),
                template_type: h.kind.clone(),
                version: Some(h.active.to_string()),
            });
        }
        Ok(TemplatesResponse { item, next_token })
    }

    /// `ListTemplateVersions`: oldest first; the token is the last version
    /// of the previous page.
    pub async fn list_template_versions(
        &self,
        kind: TemplateType,
        name: &str,
        page_size: Option<&str>,
        token: Option<&str>,
        request_id: &str,
    ) -> Result<TemplateVersionsResponse> {
        let size = page_size_of(page_size)?;
        let after: u32 = match token {
            None => 0,
            Some(t) => t
                .parse()
                .map_err(|_| ServiceError::BadRequest(format!("invalid next-token {t:?}")))?,
        };
        self.host.read_barrier(META_GROUP).await?;
        let reader = self.host.reader();
        reader
            .template(kind.as_str(), name)?
            .ok_or_else(|| not_found(kind, name))?;
        let versions = reader.template_versions(kind.as_str(), name)?;
        let rest: Vec<&TemplateVersionRecord> =
            versions.iter().filter(|r| r.version > after).collect();
        let page: Vec<&TemplateVersionRecord> = rest.iter().take(size).copied().collect();
        let next_token = (rest.len() > page.len())
            .then(|| page.last().map(|r| r.version.to_string()))
            .flatten();
        Ok(TemplateVersionsResponse {
            item: page
                .into_iter()
                .map(|r| TemplateVersionResponse {
                    creation_date: r.creation_date.clone(),
                    default_substitutions: str_member(&r.body, "DefaultSubstitutions"),
                    last_modified_date: r.last_modified_date.clone(),
                    template_description: str_member(&r.body, "TemplateDescription"),
                    template_name: name.to_owned(),
                    template_type: kind.as_str().into(),
                    version: Some(r.version.to_string()),
                })
                .collect(),
            message: None,
            next_token,
            request_id: Some(request_id.to_owned()),
        })
    }
}

fn page_size_of(page_size: Option<&str>) -> Result<usize> {
    match page_size {
        None => Ok(PAGE_SIZE_DEFAULT),
        Some(s) => match s.parse::<usize>() {
            Ok(n) if (1..=PAGE_SIZE_MAX).contains(&n) => Ok(n),
            _ => Err(ServiceError::BadRequest(format!(
                "page-size must be a whole number from 1 to {PAGE_SIZE_MAX}"
            ))),
        },
    }
}
