//! Named schemas for free-form JSON, so the OpenAPI document says once what
//! "any object" and "any value" are, and client generators make one type of
//! each instead of one per field (`CreateTaskContextType0`, …).
//!
//! They only describe the wire format (`#[schema(value_type = JsonObject)]`
//! on a `serde_json::Value` field); nothing is ever built from them.

use std::borrow::Cow;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, Schema, SchemaType, Type};
use utoipa::{PartialSchema, ToSchema};

/// Any JSON object (keys are strings, values any JSON).
#[derive(Debug)]
pub struct JsonObject;

impl PartialSchema for JsonObject {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(SchemaType::Type(Type::Object))
            .additional_properties(Some(AdditionalProperties::FreeForm(true)))
            .description(Some("Any JSON object."))
            .into()
    }
}

impl ToSchema for JsonObject {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("JsonObject")
    }
}

/// Any JSON value: object, array, string, number, boolean or null.
#[derive(Debug)]
pub struct JsonValue;

impl PartialSchema for JsonValue {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(SchemaType::AnyValue)
            .description(Some(
                "Any JSON value: object, array, string, number, boolean or null.",
            ))
            .into()
    }
}

impl ToSchema for JsonValue {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("JsonValue")
    }
}

/// `v`, or `{}` when it is null: fields documented as objects are never null
/// on the wire (a template that gives no `config` or `inputs` has `{}`).
pub fn object_or_empty(v: serde_json::Value) -> serde_json::Value {
    if v.is_null() {
        serde_json::Value::Object(Default::default())
    } else {
        v
    }
}
