"""XDM conformance of records in the Experience Platform dataset form.

One validator for every dataset of the project: compose a schema from an XDM class and field
groups, then check records the way Experience Platform (AEP) would before ingesting them::

    schema = XdmSchema.compose(EXPERIENCE_EVENT, [FG_DIRECT_MARKETING, FG_CAMPAIGN_DELIVERY_LOG])
    report = schema.validate_many(records)

Source of truth
    Adobe's official XDM JSON schemas (adobe/xdm, CC BY 4.0), vendored unchanged into
    ``rtcdp_assets/shared/xdm_schemas/`` by ``scripts/vendor_xdm.py`` (the closure of
    ``VENDORED_ROOTS``, see ``catalog``). ``RTCDP_XDM_ROOT`` points the validator at another
    copy of the tree, e.g. a full adobe/xdm checkout.

Source form versus dataset form
    The schemas use JSON-LD names (``xdm:eventType``, ``@id``,
    ``https://ns.adobe.com/experience/campaign/broadlogID``); datasets use AEP's "compatibility
    mode" names. The SCHEMAS are rewritten once at load time (records are never rewritten), see
    ``dataset_form_path``:

    * ``xdm:name`` -> ``name``; ``@id`` -> ``_id`` (any JSON-LD keyword ``@x`` -> ``_x``, e.g.
      the channel data type's ``@type`` -> ``_type``);
    * ``prefix:name`` (other namespaces: ``repo:``, ``schema:``, ``dc:``, vendors, tenants) ->
      ``_prefix.name``, as AEP documents for ``repo:createdDate`` -> ``_repo.createdDate``. In
      the vendored closure: ``_repo.createDate``/``_repo.modifyDate`` (Profile, addresses) and
      ``homeAddress._schema.latitude`` etc. (geo coordinates);
    * ``https://ns.adobe.com/<ns>/<seg>/.../<name>`` -> ``_<ns>.<seg>...<name>``, e.g.
      ``https://ns.adobe.com/experience/campaign/broadlogID`` -> ``_experience.campaign.broadlogID``
      and a vendor ``https://ns.adobe.com/vendorA/product/stockNumber`` ->
      ``_vendorA.product.stockNumber``;
    * ``https://ns.adobe.com/xdm/<seg>/.../<name>`` drops ``xdm`` like the ``xdm:`` prefix:
      ``https://ns.adobe.com/xdm/channels/application`` -> ``_channels.application`` (AEP's own
      example). Such property names do not occur in the vendored closure (there the only URI
      names are ``https://ns.adobe.com/experience/campaign/*``);
    * any other URI raises ``ValueError`` at load time: AEP documents no mapping for it and the
      XDM tree contains none, so guessing would only hide a mistake.

    Names that end up in the same container (``_experience``) are merged into one nested object
    schema; ``required`` entries are moved to the level that holds the renamed name.
    Keys of ``definitions`` and ``$ref`` pointers are left alone: they are not field names.

Strictness
    * Types, ``required``, ``enum``, ``const``, numeric/length bounds, ``pattern`` and ``format``
      are checked by jsonschema's draft-06 validator (the schemas' ``$schema``).
    * Formats: ``email`` (jsonschema's own check: contains ``@``), ``ipv4``/``ipv6`` (stdlib) and,
      implemented here because jsonschema needs extra packages (rfc3339-validator, rfc3987) for
      them: ``date-time`` (RFC 3339, timezone required, calendar-valid), ``date`` (not a draft-06
      format, but XDM uses it and AEP enforces it), ``uri`` and ``uri-reference`` (RFC 3986
      character set, percent-encoding and scheme syntax; host syntax is not parsed). ``url`` is
      not a JSON Schema format and is ignored.
    * Unknown fields: ``allOf`` composition cannot forbid them, but AEP rejects fields that are not
      in the dataset schema. Every field path of a record is therefore checked against the paths
      defined by the composed schema. Maps (``meta:xdmType: map`` / ``additionalProperties``
      schemas, e.g. ``identityMap``, ``segmentMembership``) accept any key and check the values.
    * ``meta:enum`` is NOT enforced: in XDM it is an extensible list of suggested values (e.g.
      ``eventType`` accepts custom event types); only ``enum`` restricts values.
    * The JSON-LD ``@context`` envelope of the source form (``xdm/common/extensible``, which
      allows only namespaced names) does not exist in the dataset form; it is replaced by
      ``{"type": "object"}`` and unknown names are caught by the field-path check instead.
    * Annotations (titles, descriptions, ``meta:*`` except ``meta:xdmType``, examples) are dropped
      from the loaded schemas: jsonschema would otherwise walk them on every record.

Records
    JSON values as they would be sent to AEP (dict, list, str, int, float, bool, None).
    Serialise datetimes and pandas values (``Timestamp``, ``NaT``) first: a ``datetime`` is not a
    ``date-time`` string and is reported as a type error; a float NaN passes ``number`` checks
    although JSON cannot carry it.

Privacy
    Messages never contain record values: they name the dotted path, the violated constraint and
    at most the JSON type of the value (``personalEmail.address: does not match format 'email'``).
    Keys inside maps are record data too (``segmentMembership.Email.<an address>``, consent
    ``idSpecific``), so they are shown as ``*``. ``errors(record, include_values=True)`` exists for
    local debugging only; ``validate_many`` never uses it, so its output can go into metadata.

Speed
    Everything is built once per (class, field groups, root) and cached by ``compose``. The
    $refs are inlined and ``allOf`` branches folded where that cannot change a verdict (see
    ``merge_all_of``), which leaves jsonschema about one subschema per field present instead of
    ~90 per broadLog record (7x faster). Measured on a typical broadLog ExperienceEvent record
    (``_id``, ``timestamp``, ``eventType``, ``identityMap`` with two identities,
    ``directMarketing.sends.value``, nine ``_experience.campaign.*`` fields) against
    ExperienceEvent + directMarketing + delivery log + tracking log, Python 3.11, jsonschema
    4.26, one core of a 2-core VM: ``is_valid`` checks 3,000-4,000 valid records/s and ``errors``
    builds the messages of ~1,700 invalid records/s; jsonschema's per-subschema overhead is ~95%
    of that time, the unknown-field walk the rest.

    ``validate_many`` avoids most of it (see ``ShapeCheck``): records of a batch share a few
    shapes (keys, array lengths, JSON type of each leaf), so jsonschema and the unknown-field
    walk run once per shape, and each record only gets its value-constrained leaves (formats,
    enums, patterns, bounds) checked, memoised by value. On 20,000 broadLog records from the
    real pipeline (``generate_dataset`` -> ``ingest_file`` -> ``broadlog_to_xdm`` ->
    ``to_records``; ExperienceEvent + directMarketing + delivery log), same machine, best of 3:

    ==========================================  ==============  ===============  ========
    batch                                       plain (rec/s)   fast (rec/s)     speed-up
    ==========================================  ==============  ===============  ========
    all valid                                   4,184           53,115           12.7x
    all invalid (bad timestamp and quarantine)  2,148           24,547           11.4x
    ==========================================  ==============  ===============  ========

    i.e. about 20 s per million records instead of 4 minutes. The report is identical to
    ``validate_many(..., fast=False)``, which validates every record with jsonschema; the unit
    tests compare both on thousands of pipeline records of every dataset and mutated copies.
    Records holding non-JSON values (``datetime``, tuples, ``dict``/``str`` subclasses,
    non-string keys) and schemas with ``anyOf``/``oneOf``/``not``/``contains`` (none in the
    vendored closure) take the plain path.

Modules: ``catalog`` (component ids, vendored tree, closure), ``dataset_form`` (schema renaming),
``compilation`` (inlining and allOf folding), ``formats``, ``field_tree`` (unknown fields),
``validator`` (``XdmSchema``, ``ValidationReport``) and ``shape_check`` (the fast path).
"""

from rtcdp_assets.shared.xdm_conformance.catalog import (
    EXPERIENCE_EVENT,
    FG_CAMPAIGN_DELIVERY_LOG,
    FG_CAMPAIGN_TRACKING_LOG,
    FG_COMMERCE,
    FG_DIRECT_MARKETING,
    FG_IDENTITY_MAP,
    FG_PROFILE_CONSENTS,
    FG_PROFILE_LOYALTY,
    FG_PROFILE_PERSON_DETAILS,
    FG_PROFILE_PERSONAL_DETAILS,
    FG_PROFILE_PUSH_DETAILS,
    FG_PROFILE_PUSH_NOTIFICATION_DETAILS,
    FG_PROFILE_SEGMENTATION,
    PROFILE,
    ROOT_ENV_VAR,
    VENDORED_ROOT,
    VENDORED_ROOTS,
    schema_closure,
    schema_index,
)
from rtcdp_assets.shared.xdm_conformance.dataset_form import dataset_form_path
from rtcdp_assets.shared.xdm_conformance.validator import ValidationReport, XdmSchema

__all__ = [
    "EXPERIENCE_EVENT",
    "FG_CAMPAIGN_DELIVERY_LOG",
    "FG_CAMPAIGN_TRACKING_LOG",
    "FG_COMMERCE",
    "FG_DIRECT_MARKETING",
    "FG_IDENTITY_MAP",
    "FG_PROFILE_CONSENTS",
    "FG_PROFILE_LOYALTY",
    "FG_PROFILE_PERSONAL_DETAILS",
    "FG_PROFILE_PERSON_DETAILS",
    "FG_PROFILE_PUSH_DETAILS",
    "FG_PROFILE_PUSH_NOTIFICATION_DETAILS",
    "FG_PROFILE_SEGMENTATION",
    "PROFILE",
    "ROOT_ENV_VAR",
    "VENDORED_ROOT",
    "VENDORED_ROOTS",
    "ValidationReport",
    "XdmSchema",
    "dataset_form_path",
    "schema_closure",
    "schema_index",
]
