from django import template

register = template.Library()


@register.filter
def pct(value) -> str:
    """0.8734 -> '87.3 %'; None -> '–'."""
    if value is None or value == "":
        return "–"
    return f"{float(value) * 100:.1f} %"
