"""XMP packets as documents: parsed safely, read by namespace, and edited without disturbing anyone else's data.

Two libraries share the work. defusedxml is the gate: a packet with a DOCTYPE (so any entity declaration, the
"billion laughs" expansion, an external entity) or broken XML is refused before anything else reads it. lxml
then holds the document, because it keeps what other programs wrote as they wrote it: namespace prefixes and
where they are declared, attribute order, text and whitespace between elements, comments, CDATA sections and the
``<?xpacket?>`` wrapper; a file's Windows line ends (CRLF) are written back as such. Editing only ever touches the
properties of one namespace, so darktable's history, Adobe's ``crs:`` settings and every other value serialise
back unchanged; the only bytes that can change are line breaks inside a start tag (which become spaces), the order
of ``xmlns`` declarations relative to other attributes, the whitespace outside the root element, character
references (``&#x263A;`` is written as the character itself, which XML reads alike), and a file in another
encoding than UTF-8 (UTF-16, Latin-1), which is written as UTF-8 with its declaration saying so.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as StdET
from collections.abc import Collection, Iterator, Mapping

import defusedxml
import defusedxml.ElementTree
from lxml import etree

from engine.errors import SidecarError, StoredSettingError
from engine.xmp.namespaces import RDF_NS, X_NS

MAX_PACKET_BYTES = 16 << 20  # sidecars are kilobytes; anything this large is not one
# Lightroom's crs: description, the largest we know, holds a few hundred attributes. lxml reads each attribute's
# value by a search of the element's attributes, so reading them all is quadratic: 20 000 took 2 s a read, and every
# command reads a sidecar's descriptions several times. Refused beyond this, so reading stays quick.
MAX_ATTRIBUTES = 4096

_EMPTY_PACKET = (
    '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
    f'<x:xmpmeta xmlns:x="{X_NS}">\n'
    f' <rdf:RDF xmlns:rdf="{RDF_NS}"/>\n'
    "</x:xmpmeta>\n"
    '<?xpacket end="w"?>\n'
).encode()


def _rdf(name: str) -> str:
    return f"{{{RDF_NS}}}{name}"


def parse_packet(data: bytes, name: str) -> etree._ElementTree:
    """Parse an XMP packet; :class:`SidecarError` (one line naming ``name``) for anything unsafe or broken."""
    if len(data) > MAX_PACKET_BYTES:
        raise SidecarError(f"{name}: refused, {len(data)} bytes is far too large for an XMP sidecar")
    if b"\0" not in data[:4]:  # an 8-bit encoding (UTF-16's text, BOM or not, holds NUL bytes of its own)
        data = data.rstrip(b"\0")  # padding after the packet, which darktable reads past (a tester's sidecar)
    try:
        defusedxml.ElementTree.fromstring(data, forbid_dtd=True)
    except defusedxml.DTDForbidden as e:
        raise SidecarError(f"{name}: refused, it declares a DOCTYPE (XMP never needs one; entity declarations "
                           "can expand without bound or read other files)") from e
    except (defusedxml.EntitiesForbidden, defusedxml.ExternalReferenceForbidden) as e:
        raise SidecarError(f"{name}: refused, it declares XML entities") from e
    except StdET.ParseError as e:
        raise SidecarError(f"{name}: not valid XML ({e})") from e
    except (LookupError, ValueError) as e:  # expat: an unknown encoding, or a multi-byte one it cannot read
        raise SidecarError(f"{name}: refused, its XML declaration names an encoding that cannot be read ({e}); "
                           "XMP is written in UTF-8") from e
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False,
                             remove_blank_text=False, remove_comments=False, remove_pis=False, strip_cdata=False)
    try:
        tree = etree.ElementTree(etree.fromstring(data, parser))
    except etree.XMLSyntaxError as e:
        if "Excessive depth" in str(e):  # libxml2's limit, which names a flag the user cannot set
            raise SidecarError(f"{name}: refused, it nests XML elements more than 256 levels deep (an XMP sidecar "
                               "nests fewer than ten)") from e
        if "XML_PARSE_HUGE" in str(e):  # libxml2's 10 MB limit on one text or value, named by a flag
            raise SidecarError(f"{name}: refused, it holds a text or value of more than 10 MB (an XMP sidecar's "
                               "values are at most kilobytes)") from e
        raise SidecarError(f"{name}: not valid XML ({' '.join(str(e).split())})") from e
    rdf = rdf_root(tree)
    if rdf is None:
        raise SidecarError(f"{name}: not an XMP packet (no rdf:RDF element)")
    _check_shape(rdf, name)
    return tree


def _check_shape(rdf: etree._Element, name: str) -> None:
    """Refuse text directly inside rdf:RDF (a description whose start tag was damaged reads as text there, and
    every reader would skip it: an edit would then write the defaults over what it held) and an element with
    more attributes than any sidecar has (see MAX_ATTRIBUTES)."""
    if any(text and text.strip() for text in [rdf.text, *(child.tail for child in rdf)]):
        raise SidecarError(f"{name}: not valid XMP (text directly inside rdf:RDF, outside any rdf:Description: "
                           "the file is damaged); repair it in a text editor")
    crowded = next((element for element in rdf.iter(etree.Element) if len(element.attrib) > MAX_ATTRIBUTES), None)
    if crowded is not None:
        raise SidecarError(f"{name}: refused, one XML element holds {len(crowded.attrib)} attributes (an XMP "
                           f"sidecar's hold at most a few hundred; the limit is {MAX_ATTRIBUTES})")


def empty_packet() -> etree._ElementTree:
    """A new XMP packet with an empty rdf:RDF."""
    return parse_packet(_EMPTY_PACKET, "new packet")


def rdf_root(tree: etree._ElementTree) -> etree._Element | None:
    """The packet's rdf:RDF element (the document root or inside x:xmpmeta)."""
    root = tree.getroot()
    if root.tag == _rdf("RDF"):
        return root
    return next(root.iter(_rdf("RDF")), None)


def descriptions(tree: etree._ElementTree) -> list[etree._Element]:
    """Every top-level rdf:Description (XMP may spread properties over several)."""
    rdf = rdf_root(tree)
    return [] if rdf is None else list(rdf.iterchildren(_rdf("Description")))


def _local(tag: str) -> tuple[str, str]:
    namespace, _, local = tag[1:].partition("}") if tag.startswith("{") else ("", "", tag)
    return namespace, local


def simple_properties(tree: etree._ElementTree, namespace: str) -> dict[str, str]:
    """Simple (text) properties of ``namespace``, by local name, in attribute or element form."""
    return {name: value for description in descriptions(tree) for name, value in _simple_of(description, namespace)}


def structured_properties(tree: etree._ElementTree, namespace: str) -> list[str]:
    """The local names of ``namespace``'s properties that hold an array or a structure (element form with elements
    inside), which :func:`simple_properties` leaves out."""
    return [_local(child.tag)[1] for description in descriptions(tree)
            for child in description.iterchildren(etree.Element)
            if _local(child.tag)[0] == namespace and len(child) > 0 and _holds_something(child)]


def _holds_something(prop: etree._Element) -> bool:
    """Whether a property element holds an item or a field (an empty ``<rdf:Seq/>`` holds nothing)."""
    arrays = (_rdf("Seq"), _rdf("Bag"), _rdf("Alt"))
    return any(inner.tag not in arrays or len(inner) > 0 for inner in prop)


def setting_properties(tree: etree._ElementTree, namespace: str, where: str,
                       loose: Collection[str] = ()) -> dict[str, str]:
    """:func:`simple_properties` of a namespace whose properties are settings written as text (hostplug's, in a
    sidecar or a preset): StoredSettingError naming the first one that holds an array or a structure instead,
    other than those ``loose`` allows (a tester's exposure and a preset's style, written as arrays, were passed
    over without a word)."""
    lookalike = _lookalike_namespace(tree, namespace)
    if lookalike is not None:  # a tester's mistyped URI: the sidecar rendered with the defaults without a word
        # (a SidecarError: `edit --recipe`, which repairs damaged settings, would leave these beside its own)
        raise SidecarError(f"{where}: its hostplug settings are in the namespace {lookalike!r}, not "
                           f"hostplug's {namespace!r}, and would be ignored; correct the xmlns:hostplug declaration")
    structured = [name for name in structured_properties(tree, namespace) if name not in loose]
    if structured:
        raise StoredSettingError(f"{where}: hostplug:{structured[0]} holds an array or structure, not a value "
                                 "(hostplug writes each setting as text); correct it or remove it")
    seen: dict[str, str] = {}
    for description in descriptions(tree):  # one setting given twice apart (two rdf:Description blocks)
        for name, value in _simple_of(description, namespace):
            if seen.setdefault(name, value) != value:  # a tester's: the last one was used without a word
                raise StoredSettingError(f"{where}: hostplug:{name} is set twice ({seen[name]!r} and {value!r}); "
                                         "keep one")
    return simple_properties(tree, namespace)


def _lookalike_namespace(tree: etree._ElementTree, namespace: str) -> str | None:
    """The first namespace other than ``namespace`` that properties are in and that is meant to be it: declared
    with its prefix (``hostplug``), or naming hostplug in its URI; None when there is none."""
    for description in descriptions(tree):
        prefixes = {uri: prefix for prefix, uri in description.nsmap.items()}
        for name in (*description.attrib, *(child.tag for child in description.iterchildren(etree.Element))):
            uri = _local(name)[0]
            if uri and uri != namespace and ("hostplug" in uri.lower() or prefixes.get(uri) == "hostplug"):
                return uri
    return None


def _simple_of(description: etree._Element, namespace: str) -> Iterator[tuple[str, str]]:
    """(local name, text) of the simple properties of ``namespace`` in one rdf:Description."""
    for key, value in description.attrib.items():
        ns, local = _local(key)
        if ns == namespace:
            yield local, value
    for child in description.iterchildren(etree.Element):
        ns, local = _local(child.tag)
        if ns == namespace and len(child) == 0:
            yield local, child.text or ""


def array_items(tree: etree._ElementTree, namespace: str, name: str) -> list[str]:
    """The items of an array property (rdf:Bag, rdf:Seq or rdf:Alt), or [] when it is absent."""
    tag = f"{{{namespace}}}{name}"
    for description in descriptions(tree):
        for prop in description.iterchildren(tag):
            return [(li.text or "").strip() for li in prop.iter(_rdf("li"))]
    return []


def _owned(description: etree._Element, namespace: str) -> Iterator[str | etree._Element]:
    """Attributes (names) and child elements of ``description`` in ``namespace``."""
    yield from (key for key in description.attrib if _local(key)[0] == namespace)
    yield from (child for child in description.iterchildren(etree.Element) if _local(child.tag)[0] == namespace)


def _remove(description: etree._Element, owned: str | etree._Element) -> None:
    if isinstance(owned, str):
        del description.attrib[owned]
        return
    previous = owned.getprevious()
    if previous is None:
        description.text = owned.tail
    else:
        previous.tail = owned.tail
    description.remove(owned)


def _new_description(rdf: etree._Element, namespace: str, prefix: str) -> etree._Element:
    """An empty rdf:Description appended to rdf:RDF, indented like its siblings."""
    siblings = list(rdf.iterchildren(_rdf("Description")))
    about = siblings[0].get(_rdf("about"), "") if siblings else ""
    last = rdf[-1] if len(rdf) else None
    element = etree.SubElement(rdf, _rdf("Description"), nsmap={prefix: namespace})
    element.set(_rdf("about"), about)
    if last is None:
        rdf.text, element.tail = "\n  ", "\n "
    else:
        element.tail, last.tail = last.tail, rdf.text or "\n  "
    return element


def replace_namespace(tree: etree._ElementTree, namespace: str, prefix: str, values: Mapping[str, str]) -> None:
    """Make ``values`` the only properties of ``namespace`` in the packet; nothing else changes.

    Our properties are removed wherever they are (another program may have merged them into its own
    rdf:Description) and written as attributes of the first description that declares the namespace, or of a
    new rdf:Description of their own.
    """
    rdf = rdf_root(tree)
    if rdf is None:
        raise SidecarError("not an XMP packet (no rdf:RDF element)")
    target = None
    for description in descriptions(tree):
        owned = list(_owned(description, namespace))
        if owned and target is None and description.nsmap.get(prefix) == namespace:
            target = description
        for item in owned:
            _remove(description, item)
    if target is None:
        target = _new_description(rdf, namespace, prefix)
    for local, value in values.items():
        target.set(f"{{{namespace}}}{local}", value)


def serialise(tree: etree._ElementTree, original: bytes | None = None) -> bytes:
    """The packet as UTF-8 bytes, keeping the original's XML declaration (if it had one), its encoding made
    UTF-8 (what the bytes now are), and its line ends if they were CRLF."""
    # lxml drops the whitespace between top-level nodes: the xpacket wrapper goes back on lines of its own (and
    # nothing inside the root element, a comment say, is touched).
    root = tree.getroot()
    before: list[etree._Element] = []
    after: list[etree._Element] = []
    node = root.getprevious()
    while node is not None:
        before.insert(0, node)
        node = node.getprevious()
    node = root.getnext()
    while node is not None:
        after.append(node)
        node = node.getnext()
    body = b"\n".join(etree.tostring(n, encoding="UTF-8", xml_declaration=False, with_tail=False)
                      for n in (*before, root, *after))
    head = _as_ascii(original) if original is not None else b""
    if head.lstrip().startswith(b"<?xml"):
        start = head.index(b"<?xml")
        declaration = head[start:head.index(b"?>", start) + 2]
        declaration = re.sub(rb"""encoding\s*=\s*(["'])[^"']*\1""", b'encoding="UTF-8"', declaration)
        body = declaration + b"\n" + body
    body += b"\n"
    return body.replace(b"\n", b"\r\n") if b"\r\n" in head else body


def _as_ascii(original: bytes) -> bytes:
    """The start of a packet's bytes as ASCII text, where its XML declaration and line ends can be read: a UTF-16
    file (by its byte-order mark) decoded, others as they are."""
    if original[:2] in (b"\xff\xfe", b"\xfe\xff"):
        return original.decode("utf-16", errors="replace").encode("ascii", errors="replace")
    return original
